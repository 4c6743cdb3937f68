/**
 * kill -9 of the audit service process during heavy appends, repeated: after every restart
 * each acknowledged record is present at its acknowledged index, the whole log verifies, and
 * every checkpoint signed before a crash is consistent with the next one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { status, type ServiceError } from '@grpc/grpc-js';
import {
  AuditRecord,
  AuditServiceClient,
  EventType,
  Outcome,
  type AppendResponse,
  type GetCheckpointResponse,
  type GetConsistencyProofResponse,
} from '../gen/bulwark/audit/v1/audit.ts';
import { createTestPki, type TestPki } from '../mesh/ca/testing.ts';
import { createMeshClient } from '../mesh/kit/index.ts';
import { verifyConsistency } from '../services/audit/merkle.ts';
import { openCheckpoint, parseVerifierKey } from '../services/audit/note.ts';
import { openSqliteStore } from '../services/audit/store/sqlite-store.ts';
import { openPostgresStore } from '../services/audit/store/postgres-store.ts';
import type { AuditStore } from '../services/audit/store/types.ts';
import { startPostgres, type PostgresInstance } from './support/postgres.ts';
import { verifyStore } from '../services/audit/verify.ts';
import { call, pemOf, quietLogger } from './support/audit-service.ts';

interface CrashBackend {
  name: string;
  rounds: number;
  /** Store flags for main.ts. */
  args(): Promise<string[]>;
  openReadOnly(): Promise<AuditStore>;
  teardown(): Promise<void>;
}
const MAIN = join(import.meta.dirname, '..', 'services', 'audit', 'main.ts');

async function startService(args: string[]): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, OTEL_TRACES_EXPORTER: 'none', OTEL_SDK_DISABLED: 'true' },
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout! });
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`audit did not start: ${stderr}`)), 30_000);
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; address?: string };
        if (entry.msg === 'audit service ready' && entry.address) {
          clearTimeout(timer);
          resolve(entry.address);
        } else if (/cannot start/.test(entry.msg ?? '')) {
          clearTimeout(timer);
          reject(new Error(line));
        }
      } catch {
        // not a log line
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`audit exited with ${code}: ${stderr}`));
    });
  });
  return { child, address };
}

const dir = mkdtempSync(join(tmpdir(), 'audit-crash-'));
let pgi: PostgresInstance | undefined;
const backends: CrashBackend[] = [
  {
    name: 'sqlite',
    rounds: 20,
    args: async () => ['--sqlite', join(dir, 'audit.db')],
    openReadOnly: async () => openSqliteStore({ path: join(dir, 'audit.db'), readOnly: true }),
    teardown: async () => undefined,
  },
  {
    name: 'postgres',
    rounds: 5,
    args: async () => {
      pgi ??= await startPostgres();
      return ['--postgres', pgi.url];
    },
    openReadOnly: async () => openPostgresStore({ connectionString: pgi!.url }),
    teardown: async () => {
      await pgi?.stop();
    },
  },
];

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.each(backends)(
  'audit service on $name killed with SIGKILL during heavy appends',
  (backend) => {
    let pki: TestPki;
    beforeAll(async () => {
      pki = await createTestPki({ services: ['audit', 'inference'] });
    });
    afterAll(async () => {
      await pki.cleanup();
      await backend.teardown();
    });

    it(`loses nothing acknowledged, ${backend.rounds} times in a row`, async () => {
      const ROUNDS = backend.rounds;
      const args = [
        ...(await backend.args()),
        '--certs',
        pki.dir,
        '--port',
        '0',
        '--key',
        join(dir, `${backend.name}.key`),
        '--no-metrics',
      ];
      const acknowledged = new Map<number, string>();
      const checkpoints: GetCheckpointResponse[] = [];
      let verifierKey = '';
      for (let round = 0; round < ROUNDS; round++) {
        const { child, address } = await startService(args);
        const exited = new Promise((r) => child.once('exit', r));
        const client = createMeshClient(AuditServiceClient, {
          address,
          tls: pemOf(pki, 'inference'),
          expectedServer: 'spiffe://bulwark.local/svc/audit',
          logger: quietLogger,
        });
        try {
          // The checkpoint signed before the last crash must be consistent with this one.
          const cp = await call<unknown, GetCheckpointResponse>(client, 'getCheckpoint', {});
          verifierKey ||= cp.verifierKey;
          expect(cp.verifierKey).toBe(verifierKey);
          const previous = checkpoints.at(-1);
          if (previous) {
            expect(cp.treeSize).toBeGreaterThanOrEqual(previous.treeSize);
            const p = await call<unknown, GetConsistencyProofResponse>(
              client,
              'getConsistencyProof',
              {
                firstSize: previous.treeSize,
                secondSize: cp.treeSize,
              },
            );
            expect(
              verifyConsistency(
                previous.treeSize,
                cp.treeSize,
                previous.rootHash,
                cp.rootHash,
                p.hashes,
              ),
            ).toBe(true);
          }
          checkpoints.push(cp);
          let stop = false;
          const writers = Array.from({ length: 32 }, async (_, w) => {
            for (let i = 0; !stop; i++) {
              const rid = `r${round}-${w}-${i}`;
              const rec = AuditRecord.fromPartial({
                id: rid,
                eventType: EventType.EVENT_TYPE_INFERENCE,
                actor: { sub: `acme/w${w}` },
                outcome: Outcome.OUTCOME_SUCCESS,
              });
              try {
                const res = await call<unknown, AppendResponse>(client, 'append', { record: rec });
                acknowledged.set(res.receipt!.leafIndex, rid);
              } catch (err) {
                expect([status.UNAVAILABLE, status.CANCELLED, status.INTERNAL]).toContain(
                  (err as ServiceError).code,
                );
                return;
              }
            }
          });
          // Take a checkpoint mid-flight too, then kill at a varying moment.
          await new Promise((r) => setTimeout(r, 60 + (round % 5) * 40));
          checkpoints.push(await call<unknown, GetCheckpointResponse>(client, 'getCheckpoint', {}));
          await new Promise((r) => setTimeout(r, 30 + (round % 3) * 50));
          child.kill('SIGKILL');
          await exited;
          stop = true;
          await Promise.all(writers);
        } finally {
          client.close();
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        }
      }
      expect(acknowledged.size).toBeGreaterThan(ROUNDS * 10);
      // Offline: every acknowledged record at its index, and the whole log verifies.
      const store = await backend.openReadOnly();
      try {
        const size = await store.size();
        const leaves = await store.readLeaves(0, size);
        const byIndex = new Map(
          leaves.map((l) => [l.index, JSON.parse(l.data.toString()).id as string]),
        );
        const missing = [...acknowledged].filter(([index, rid]) => byIndex.get(index) !== rid);
        expect(missing).toEqual([]);
        const verifier = parseVerifierKey(verifierKey);
        const result = await verifyStore(store, { verifier, origin: 'bulwark.local/audit' });
        expect(result).toMatchObject({ ok: true, treeSize: size });
        for (const cp of checkpoints) {
          expect(openCheckpoint(cp.checkpoint, verifier, 'bulwark.local/audit').size).toBe(
            cp.treeSize,
          );
        }
      } finally {
        await store.close();
      }
    }, 300_000);
  },
);
