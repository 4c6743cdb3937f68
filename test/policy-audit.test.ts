import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { status, type ServerReadableStream, type sendUnaryData } from '@grpc/grpc-js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import {
  AuditServiceClient,
  AuditServiceService,
  type AppendBatchRequest,
  type AppendBatchResponse,
  type AuditRecord,
} from '../gen/bulwark/audit/v1/audit.ts';
import { createTestPki, type TestPki } from '../mesh/ca/index.ts';
import { createAuditService, openSqliteStore } from '../services/audit/index.ts';
import {
  createMeshClient,
  createMeshServer,
  unaryHandler,
  type MeshServer,
} from '../mesh/kit/index.ts';
import {
  createAuditAuditor,
  createFileSource,
  createPolicyStore,
  decideAndRecord,
  type AuditAuditor,
  type PolicyStore,
} from '../services/policy/index.ts';

const root = new URL('../policy/', import.meta.url);
const quiet = pino({ level: 'silent' });
const now = () => new Date('2026-01-01T12:00:00Z');
/** A subject whose records the stand-in audit server refuses as invalid. */
const POISON = 'acme/poison';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function until(check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A stand-in audit server: the availability behaviour is what is tested, not the log. */
function startAudit(
  pki: TestPki,
  port: number,
  received: AuditRecord[],
  batches: number[],
): Promise<MeshServer> {
  const server = createMeshServer({
    tls: pki.services.audit!,
    allowedPeers: [pki.services.policy!.spiffeId],
    port,
    logger: quiet,
  });
  const fail = unaryHandler(async () => {
    throw new Error('not used');
  });
  server.addService(AuditServiceService, {
    append: (
      call: { request: { record?: AuditRecord } },
      cb: sendUnaryData<{ receipt: undefined }>,
    ) => {
      if (call.request.record?.actor?.sub === POISON) {
        cb({ code: status.INVALID_ARGUMENT, details: 'record.actor.sub: refused' });
        return;
      }
      received.push(call.request.record!);
      cb(null, { receipt: undefined });
    },
    appendBatch: (
      call: ServerReadableStream<AppendBatchRequest, AppendBatchResponse>,
      cb: sendUnaryData<AppendBatchResponse>,
    ) => {
      const got: AuditRecord[] = [];
      call.on('data', (m: AppendBatchRequest) => got.push(m.record!));
      call.on('end', () => {
        if (got.some((r) => r.actor?.sub === POISON)) {
          cb({ code: status.INVALID_ARGUMENT, details: 'record.actor.sub: refused' });
          return;
        }
        received.push(...got);
        batches.push(got.length);
        cb(null, { receipts: [] });
      });
    },
    query: fail,
    getCheckpoint: fail,
    getInclusionProof: fail,
    getConsistencyProof: fail,
    verify: fail,
  });
  return server.listen().then(() => server);
}

describe('decision audit', () => {
  let pki: TestPki;
  let dir: string;
  let port: number;
  let store: PolicyStore;
  let client: AuditServiceClient;
  let auditor: AuditAuditor | undefined;
  let audit: MeshServer | undefined;
  const logs: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _e, done) {
        logs.push(JSON.parse(String(chunk)));
        done();
      },
    }),
  );

  beforeAll(async () => {
    pki = await createTestPki({ services: ['policy', 'audit'] });
    store = await createPolicyStore({
      source: createFileSource({
        modelPath: new URL('model.conf', root).pathname,
        policyPath: new URL('policy.yaml', root).pathname,
      }),
      logger: quiet,
      watch: false,
      now,
    });
  });
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bulwark-policy-audit-'));
    port = await freePort();
    client = createMeshClient(AuditServiceClient, {
      address: `127.0.0.1:${port}`,
      tls: pki.services.policy!,
      expectedServer: pki.services.audit!.spiffeId,
      logger: quiet,
      channelOptions: {
        'grpc.initial_reconnect_backoff_ms': 50,
        'grpc.max_reconnect_backoff_ms': 200,
      },
    });
  });
  afterEach(async () => {
    await auditor?.close();
    auditor = undefined;
    client.close();
    await audit?.shutdown(500);
    audit = undefined;
    rmSync(dir, { recursive: true, force: true });
  });
  afterAll(async () => {
    store.close();
    await pki.cleanup();
  });

  const open = (extra: Partial<Parameters<typeof createAuditAuditor>[0]> = {}) =>
    (auditor = createAuditAuditor({
      client,
      queueDir: dir,
      logger,
      flushIntervalMs: 20,
      retryIntervalMs: 50,
      deadlineMs: 500,
      ...extra,
    }));
  const infer = { subject: 'acme/bob', org: 'acme', object: 'model:iris', action: 'infer' };
  const admin = {
    subject: 'acme/ops',
    org: 'acme',
    object: 'model:credit',
    action: 'admin',
    attributes: { source_address: '10.0.0.1' },
  };
  const decide = (a: AuditAuditor, r: typeof infer) =>
    decideAndRecord(store, a, r, { via: 'decide' }, now);

  it('while audit is down: ordinary decisions are served and queued on disk, admin decisions refused; then it drains', async () => {
    const a = open();
    for (let i = 0; i < 5; i += 1) expect((await decide(a, infer)).allowed).toBe(true);
    await expect(decide(a, admin)).rejects.toMatchObject({
      code: 'ERR_POLICY_AUDIT_UNAVAILABLE',
      grpcStatus: status.UNAVAILABLE,
    });
    await expect(
      decide(a, { ...infer, object: 'policy:rules', action: 'read' }),
    ).rejects.toMatchObject({ code: 'ERR_POLICY_AUDIT_UNAVAILABLE' });
    await until(() => existsSync(join(dir, 'queue.jsonl')));
    await until(
      () => readFileSync(join(dir, 'queue.jsonl'), 'utf8').trim().split('\n').length === 7,
    );
    expect(a.reachable).toBe(false);
    expect(logs.some((l) => l.event === 'policy.audit.unreachable')).toBe(true);

    const received: AuditRecord[] = [];
    const batches: number[] = [];
    audit = await startAudit(pki, port, received, batches);
    await until(() => received.length === 7);
    expect(batches.length).toBeGreaterThanOrEqual(1);
    await until(() => a.queued === 0);
    await until(() => !existsSync(join(dir, 'queue.jsonl')));
    const first = received[0]!;
    expect(first).toMatchObject({
      service: 'policy',
      action: 'infer',
      actor: expect.objectContaining({ sub: 'acme/bob', org: 'acme' }),
    });
    expect(first.policyRevision).toBe(store.revision);
    expect(received.filter((r) => r.attributes.note === 'fail-closed')).toHaveLength(2);

    // Back up: administrative decisions are acknowledged and allowed again.
    expect((await decide(a, admin)).allowed).toBe(true);
    expect(received.at(-1)).toMatchObject({ action: 'admin', outcome: 1 });
  });

  it('with the real audit service: queued while it is down, in its Merkle log once it is up', async () => {
    const a = open();
    for (let i = 0; i < 4; i += 1) await decide(a, infer);
    await expect(decide(a, admin)).rejects.toMatchObject({ code: 'ERR_POLICY_AUDIT_UNAVAILABLE' });
    await until(() => existsSync(join(dir, 'queue.jsonl')));

    const service = await createAuditService({
      store: openSqliteStore({ path: join(dir, 'audit.sqlite') }),
      signingKeyFile: join(dir, 'audit.key'),
      logger: quiet,
      checkpointIntervalMs: 0,
    });
    audit = createMeshServer({
      tls: pki.services.audit!,
      allowedPeers: [pki.services.policy!.spiffeId],
      port,
      logger: quiet,
    });
    service.addTo(audit);
    await audit.listen();
    try {
      // 4 decisions + the record of the refused admin decision.
      await until(() => service.log.size() === 5 && a.queued === 0);
      expect((await decide(a, admin)).allowed).toBe(true);
      expect(service.log.size()).toBe(6);
    } finally {
      await audit.shutdown(500);
      audit = undefined;
      await service.close();
    }
  });

  it('a full queue drops records, counts them in a metric and logs it', async () => {
    const registry = new Registry();
    const a = open({ maxQueueRecords: 3, registry });
    for (let i = 0; i < 5; i += 1) await decide(a, infer);
    expect(a.dropped).toBe(2);
    expect(await registry.getSingleMetricAsString('bulwark_policy_audit_dropped_total')).toContain(
      'bulwark_policy_audit_dropped_total 2',
    );
    expect(logs.filter((l) => l.event === 'policy.audit.dropped').length).toBeGreaterThanOrEqual(2);
  });

  it('a record audit refuses as invalid is dropped, counted and logged without blocking the rest', async () => {
    const received: AuditRecord[] = [];
    audit = await startAudit(pki, port, received, []);
    const a = open({ flushIntervalMs: 10_000 });
    await decide(a, infer);
    await decide(a, { ...infer, subject: POISON });
    await decide(a, infer);
    expect(await a.flush()).toBe(true);
    expect(received).toHaveLength(2);
    expect(a.rejected).toBe(1);
    expect(a.queued).toBe(0);
    expect(logs.some((l) => l.event === 'policy.audit.rejected')).toBe(true);
  });

  it('records queued before a restart are delivered after it', async () => {
    const first = open();
    for (let i = 0; i < 3; i += 1) await decide(first, infer);
    await first.close();
    auditor = undefined;
    expect(readFileSync(join(dir, 'queue.jsonl'), 'utf8').trim().split('\n')).toHaveLength(3);
    const received: AuditRecord[] = [];
    audit = await startAudit(pki, port, received, []);
    const second = open();
    expect(second.queued).toBe(3);
    await until(() => received.length === 3);
    expect(received.every((r) => r.actor?.sub === 'acme/bob')).toBe(true);
  });
});
