/**
 * The audit log engine over both backends: group commit, checkpoints that never contradict
 * each other, proofs that verify, and tampering behind the service's back.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditRecord, EventType, Outcome } from '../gen/bulwark/audit/v1/audit.ts';
import { openAuditLog, type AuditLog } from '../services/audit/log.ts';
import { hashLeaf, verifyConsistency, verifyInclusion } from '../services/audit/merkle.ts';
import { openCheckpoint, parseVerifierKey } from '../services/audit/note.ts';
import type { AuditStore } from '../services/audit/store/types.ts';
import { appendToFrontier, EMPTY_FRONTIER } from '../services/audit/tree-nodes.ts';
import {
  postgresBackend,
  sqliteBackend,
  type AuditBackend,
  type AuditBackendHandle,
} from './support/audit-backends.ts';

const ORIGIN = 'bulwark.local/audit';
const clock = () => new Date('2026-03-04T05:06:07.000Z');

export function sampleRecord(i: number, overrides: Partial<AuditRecord> = {}): AuditRecord {
  return AuditRecord.fromPartial({
    id: `rec-${i}`,
    service: 'inference',
    eventType: EventType.EVENT_TYPE_INFERENCE,
    actor: { sub: `acme/user${i % 3}`, org: i % 2 ? 'acme' : 'globex' },
    action: 'infer',
    target: { modelName: i % 4 ? 'iris' : 'credit', modelVersion: '1' },
    outcome: i % 5 ? Outcome.OUTCOME_SUCCESS : Outcome.OUTCOME_DENIED,
    ...overrides,
  });
}

/** Counts store commits, to observe group commit. */
function countingStore(store: AuditStore): AuditStore & { commits: number } {
  const counted = Object.create(store) as AuditStore & { commits: number };
  counted.commits = 0;
  counted.append = async (...args) => {
    counted.commits++;
    return store.append(...args);
  };
  return counted;
}

describe.each([sqliteBackend(), postgresBackend()])(
  'audit log on $name',
  (backend: AuditBackend) => {
    let handle: AuditBackendHandle;
    let dir: string;
    const signingKey = generateKeyPairSync('ed25519').privateKey;
    const logs: AuditLog[] = [];
    const open = async (store?: AuditStore, extra = {}) => {
      const log = await openAuditLog({
        store: store ?? (await handle.open()),
        signingKey,
        origin: ORIGIN,
        checkpointStatePath: join(dir, 'checkpoint'),
        clock,
        ...extra,
      });
      logs.push(log);
      return log;
    };

    beforeEach(async () => {
      handle = await backend.fresh();
      dir = mkdtempSync(join(tmpdir(), 'audit-log-'));
    });
    afterEach(async () => {
      for (const log of logs.splice(0)) await log.close().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    });
    afterAll(() => backend.teardown());

    it('commits concurrent appends together and acknowledges each with its index', async () => {
      const store = countingStore(await handle.open());
      const log = await open(store);
      const receipts = await Promise.all(
        Array.from({ length: 200 }, (_, i) => log.append(sampleRecord(i))),
      );
      expect(receipts.map((r) => r.leafIndex).sort((a, b) => a - b)).toEqual([
        ...Array(200).keys(),
      ]);
      for (const r of receipts) expect(r.treeSize).toBeGreaterThan(r.leafIndex);
      // Group commit: far fewer transactions than records.
      expect(store.commits).toBeLessThan(20);
      expect(log.size()).toBe(200);
      const many = await log.appendMany(
        [sampleRecord(900), sampleRecord(901)],
        'spiffe://bulwark.local/svc/policy',
      );
      expect(many.map((r) => r.leafIndex)).toEqual([200, 201]);
    });

    it('refuses an invalid record without appending anything from its batch', async () => {
      const log = await open();
      await expect(
        log.appendMany([
          sampleRecord(1),
          sampleRecord(2, { outcome: Outcome.OUTCOME_UNSPECIFIED }),
        ]),
      ).rejects.toThrow(/record\.outcome/);
      expect(log.size()).toBe(0);
    });

    it('signs checkpoints that verify, each consistent with the last, and proofs against them', async () => {
      const log = await open();
      const verifier = parseVerifierKey(log.verifierKey);
      const sizes = [1, 2, 3, 7, 8, 13, 64, 100];
      const checkpoints = [];
      for (const size of sizes) {
        await log.appendMany(
          Array.from({ length: size - log.size() }, (_, k) => sampleRecord(log.size() + k)),
        );
        const cp = await log.checkpoint();
        expect(openCheckpoint(cp.note, verifier, ORIGIN).size).toBe(size);
        checkpoints.push(cp);
      }
      for (let i = 1; i < checkpoints.length; i++) {
        const [a, b] = [checkpoints[i - 1]!, checkpoints[i]!];
        const proof = await log.consistencyProof(a.size, b.size);
        expect(verifyConsistency(a.size, b.size, a.root, b.root, proof.hashes)).toBe(true);
      }
      const last = checkpoints[checkpoints.length - 1]!;
      for (const index of [0, 1, 50, 99]) {
        const p = await log.inclusionProof(index, last.size);
        expect(verifyInclusion(hashLeaf(p.leaf.data), index, last.size, p.hashes, last.root)).toBe(
          true,
        );
      }
      // Latest-checkpoint form: a leaf past the last checkpoint gets a freshly signed one.
      await log.append(sampleRecord(100));
      const p = await log.inclusionProof(100);
      const cp = openCheckpoint(p.checkpoint!, verifier, ORIGIN);
      expect(cp.size).toBe(101);
      expect(verifyInclusion(hashLeaf(p.leaf.data), 100, 101, p.hashes, cp.root)).toBe(true);
      await expect(log.inclusionProof(500, 0)).rejects.toThrow(/not in a tree/);
      await expect(log.consistencyProof(5, 1000)).rejects.toThrow(/not within/);
      expect((await log.verify()).ok).toBe(true);
    });

    it('reopens where it was: same root, next index, earlier checkpoints still consistent', async () => {
      const log = await open();
      await log.appendMany(Array.from({ length: 10 }, (_, i) => sampleRecord(i)));
      const before = await log.checkpoint();
      await log.close();
      const again = await open();
      expect(again.size()).toBe(10);
      expect((await again.append(sampleRecord(10))).leafIndex).toBe(10);
      const after = await again.checkpoint();
      const proof = await again.consistencyProof(before.size, after.size);
      expect(
        verifyConsistency(before.size, after.size, before.root, after.root, proof.hashes),
      ).toBe(true);
    });

    async function tampered(mutate: () => Promise<void>): Promise<AuditLog> {
      const log = await open();
      await log.appendMany(Array.from({ length: 12 }, (_, i) => sampleRecord(i)));
      await log.checkpoint();
      await log.appendMany([sampleRecord(12), sampleRecord(13)]);
      await mutate();
      return log;
    }

    it('an edited row fails verification naming the leaf, and no new checkpoint is signed', async () => {
      const log = await tampered(() =>
        handle.sql('UPDATE leaves SET data = ? WHERE idx = 5', Buffer.from('{"forged":true}')),
      );
      const result = await log.verify();
      expect(result).toMatchObject({ ok: false, firstBadLeaf: 5 });
      expect(result.reason).toMatch(/leaf 5/);
      await expect(log.checkpoint()).rejects.toMatchObject({ code: 'ERR_AUDIT_INTEGRITY' });
      await expect(log.append(sampleRecord(99))).rejects.toMatchObject({
        code: 'ERR_AUDIT_INTEGRITY',
      });
      // A restart notices by itself.
      const reopened = await open(undefined, { verifyOnStart: true });
      expect(reopened.integrityFailure()).toMatch(/leaf 5/);
      await expect(reopened.checkpoint()).rejects.toMatchObject({ code: 'ERR_AUDIT_INTEGRITY' });
    });

    it('a deleted row fails verification naming the leaf', async () => {
      const log = await tampered(() => handle.sql('DELETE FROM leaves WHERE idx = 3'));
      expect(await log.verify()).toMatchObject({ ok: false, firstBadLeaf: 3 });
    });

    it('reordered rows fail verification naming the first moved leaf', async () => {
      const log = await tampered(async () => {
        await handle.sql('UPDATE leaves SET idx = -1 WHERE idx = 4');
        await handle.sql('UPDATE leaves SET idx = 4 WHERE idx = 8');
        await handle.sql('UPDATE leaves SET idx = 8 WHERE idx = -1');
      });
      expect(await log.verify()).toMatchObject({ ok: false, firstBadLeaf: 4 });
    });

    it('a rewritten leaf with a matching forged hash still contradicts the signed checkpoint', async () => {
      const forged = Buffer.from('{"forged":true}');
      const log = await tampered(async () => {
        await handle.sql('UPDATE leaves SET data = ? WHERE idx = 2', forged);
        await handle.sql(
          'UPDATE nodes SET hash = ? WHERE level = 0 AND idx = 2',
          Buffer.from(hashLeaf(forged)),
        );
      });
      const result = await log.verify();
      expect(result.ok).toBe(false);
      // The forged leaf hash no longer matches the stored node above it.
      expect(result.firstBadLeaf).toBe(2);
      expect(result.reason).toMatch(/leaves 2\.\.3/);
      await expect(log.checkpoint()).rejects.toMatchObject({ code: 'ERR_AUDIT_INTEGRITY' });
    });

    it('a forged leaf with every node above it rewritten contradicts the signed checkpoint', async () => {
      const forged = Buffer.from('{"forged":true}');
      const log = await tampered(async () => {
        await handle.sql('DELETE FROM nodes');
        await handle.sql('UPDATE leaves SET data = ? WHERE idx = 2', forged);
      });
      // Rebuild every node from the forged leaves, as a careful attacker would.
      const raw = await handle.open();
      const leaves = (await raw.readLeaves(0, 100)).map((l) => hashLeaf(l.data));
      await raw.close();
      for (const n of appendToFrontier(EMPTY_FRONTIER, leaves).nodes) {
        await handle.sql(
          'INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)',
          n.level,
          n.index,
          Buffer.from(n.hash),
        );
      }
      const result = await log.verify();
      expect(result).toMatchObject({ ok: false, firstBadLeaf: 0 });
      expect(result.reason).toMatch(/checkpoint of size 12/);
    });

    it('an edited interior node makes the log refuse to sign over it', async () => {
      const log = await tampered(() =>
        handle.sql('UPDATE nodes SET hash = ? WHERE level = 3 AND idx = 0', Buffer.alloc(32, 9)),
      );
      await expect(log.checkpoint()).rejects.toMatchObject({ code: 'ERR_AUDIT_INTEGRITY' });
      expect(log.integrityFailure()).toMatch(/not consistent with the checkpoint of size 12/);
    });

    it('an edited node that no checkpoint proof touches is still found by verify', async () => {
      const log = await tampered(() =>
        handle.sql('UPDATE nodes SET hash = ? WHERE level = 2 AND idx = 0', Buffer.alloc(32, 9)),
      );
      const result = await log.verify();
      expect(result.ok).toBe(false);
      expect(result.reason).toMatch(/stored tree node 2:0 \(leaves 0..3\)/);
      await expect(log.checkpoint()).rejects.toMatchObject({ code: 'ERR_AUDIT_INTEGRITY' });
    });

    it('a truncated log is refused at start: fewer leaves than the last signed checkpoint', async () => {
      const log = await open();
      await log.appendMany(Array.from({ length: 6 }, (_, i) => sampleRecord(i)));
      await log.checkpoint();
      await log.close();
      await handle.sql('DELETE FROM leaves WHERE idx >= 4');
      await handle.sql('DELETE FROM nodes WHERE idx >= 2');
      await handle.sql('UPDATE state SET size = 4');
      await handle.sql('DELETE FROM checkpoints');
      const reopened = await open();
      // The checkpoint state file outside the database still remembers size 6.
      expect(reopened.integrityFailure()).toMatch(/4 leaves but its last signed checkpoint has 6/);
      await expect(reopened.checkpoint()).rejects.toMatchObject({ code: 'ERR_AUDIT_INTEGRITY' });
    });

    if (backend.name === 'sqlite') {
      it('a full disk fails appends with STORE_UNAVAILABLE and acknowledges nothing half-written', async () => {
        const store = await handle.open({ maxPages: 40 });
        const log = await open(store, { maxBatch: 64 });
        const big = (i: number) => sampleRecord(i, { reason: 'x'.repeat(1000) });
        const acknowledged: number[] = [];
        let failure: unknown;
        for (let i = 0; i < 400 && !failure; i++) {
          try {
            acknowledged.push((await log.append(big(i))).leafIndex);
          } catch (err) {
            failure = err;
          }
        }
        expect(failure).toMatchObject({ code: 'ERR_AUDIT_STORE_UNAVAILABLE', grpcStatus: 14 });
        await log.close();
        const reopened = await open(await handle.open());
        expect(reopened.size()).toBe(acknowledged.length);
        expect((await reopened.verify()).ok).toBe(true);
      });
    }
  },
);
