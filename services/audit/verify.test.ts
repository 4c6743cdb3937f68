/**
 * The parallel SQLite verifier (worker threads hashing aligned chunks) must reach exactly the
 * verdict of the one-thread verifier: same root on an intact log, same first bad leaf and reason
 * on every kind of tampering, across chunk boundaries.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { AuditRecord, EventType, Outcome } from '../../gen/bulwark/audit/v1/audit.ts';
import { openAuditLog } from './log.ts';
import { parseVerifierKey } from './note.ts';
import { openSqliteStore } from './store/sqlite-store.ts';
import { hashLeaf } from './merkle.ts';
import { appendToFrontier, EMPTY_FRONTIER } from './tree-nodes.ts';
import { verifyStore, type VerifyResult } from './verify.ts';
import { readHashedChunks, type AnomalousChunk, type HashedChunk } from './verify-reader.ts';

const ORIGIN = 'bulwark.local/audit';
const LEAVES = 300;

describe('verifyStore on SQLite: parallel reader and one thread agree', () => {
  let dir: string;
  let pristine: string;
  let verifierKey: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'audit-verify-'));
    pristine = join(dir, 'pristine.db');
    const log = await openAuditLog({
      store: openSqliteStore({ path: pristine }),
      signingKey: generateKeyPairSync('ed25519').privateKey,
      origin: ORIGIN,
      verifyOnStart: false,
    });
    // Checkpoints at several sizes, some inside a read chunk, some on its edge.
    for (let i = 0; i < LEAVES; i += 50) {
      await log.appendMany(
        Array.from({ length: 50 }, (_, k) =>
          AuditRecord.fromPartial({
            id: `r${i + k}`,
            eventType: EventType.EVENT_TYPE_AUTHZ,
            actor: { sub: `acme/u${k}`, org: 'acme' },
            action: 'infer',
            outcome: Outcome.OUTCOME_SUCCESS,
          }),
        ),
      );
      await log.checkpoint();
    }
    verifierKey = log.verifierKey;
    await log.close();
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  let copies = 0;
  /** A copy of the pristine log with `sql` applied behind the log's back. */
  const tampered = (sql: string, ...args: Array<Uint8Array | number>): string => {
    const path = join(dir, `t${copies++}.db`);
    const src = new DatabaseSync(pristine);
    src.exec(`VACUUM INTO '${path}'`);
    src.close();
    const db = new DatabaseSync(path);
    if (sql) db.prepare(sql).run(...args);
    db.close();
    return path;
  };

  const both = async (path: string): Promise<[VerifyResult, VerifyResult]> => {
    const store = openSqliteStore({ path, readOnly: true });
    try {
      const options = { verifier: parseVerifierKey(verifierKey), origin: ORIGIN, chunkSize: 37 };
      return [
        await verifyStore(store, { ...options, parallel: true }),
        await verifyStore(store, { ...options, parallel: false }),
      ];
    } finally {
      await store.close();
    }
  };

  it('accepts the intact log', async () => {
    const [parallel, serial] = await both(tampered(''));
    expect(parallel.ok).toBe(true);
    expect(parallel.treeSize).toBe(LEAVES);
    expect(parallel).toEqual(serial);
  });

  type Tamper = [what: string, sql: string, arg: Uint8Array | number | undefined];
  it.each<Tamper>([
    ['an edited leaf', 'UPDATE leaves SET data = ? WHERE idx = 111', Buffer.from('{"x":1}')],
    // Every row has three entries: Jest would take a missing third one for a `done` callback.
    ['a deleted leaf', 'DELETE FROM leaves WHERE idx = 74', undefined],
    [
      'a forged stored leaf hash',
      'UPDATE nodes SET hash = ? WHERE level = 0 AND idx = 200',
      Buffer.alloc(32, 7),
    ],
    [
      'a short stored leaf hash',
      'UPDATE nodes SET hash = ? WHERE level = 0 AND idx = 3',
      Buffer.alloc(31, 0),
    ],
    [
      'an edited interior node',
      'UPDATE nodes SET hash = ? WHERE level = 3 AND idx = 20',
      Buffer.alloc(32, 9),
    ],
    ['a deleted interior node', 'DELETE FROM nodes WHERE level = 5 AND idx = 2', undefined],
    ['a row past the recorded size', 'UPDATE state SET size = ? WHERE id = 1', LEAVES - 1],
    [
      'two leaves swapped',
      `UPDATE leaves SET data = CASE idx WHEN 120 THEN (SELECT data FROM leaves WHERE idx = 121)
         ELSE (SELECT data FROM leaves WHERE idx = 120) END WHERE idx IN (120, ?)`,
      121,
    ],
    ['a leaf replaced by a number', 'UPDATE leaves SET data = ? WHERE idx = 40', 42],
  ])('finds %s and names the same leaf', async (_what, sql, arg) => {
    const [parallel, serial] = await both(tampered(sql, ...(arg === undefined ? [] : [arg])));
    expect(parallel.ok).toBe(false);
    expect(parallel.firstBadLeaf).toEqual(expect.any(Number));
    // The verdict; how far each got before stopping (treeSize, root) depends on reading order.
    const verdict = (r: VerifyResult) => ({
      ok: r.ok,
      firstBadLeaf: r.firstBadLeaf,
      reason: r.reason,
    });
    expect(verdict(parallel)).toEqual(verdict(serial));
  });

  it('finds an edited leaf whose whole tree was rebuilt to match: the signed checkpoints disagree', async () => {
    // The attacker rewrites leaf 111 and every stored node, so leaves and nodes agree again.
    const path = tampered('UPDATE leaves SET data = ? WHERE idx = 111', Buffer.from('{"x":1}'));
    const db = new DatabaseSync(path);
    const rows = db.prepare('SELECT data FROM leaves ORDER BY idx').all() as { data: Uint8Array }[];
    const { nodes } = appendToFrontier(
      EMPTY_FRONTIER,
      rows.map((r) => hashLeaf(r.data)),
    );
    db.exec('BEGIN');
    db.exec('DELETE FROM nodes');
    const insert = db.prepare('INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)');
    for (const n of nodes) insert.run(n.level, n.index, n.hash);
    db.exec('COMMIT');
    db.close();
    const [parallel, serial] = await both(path);
    expect(parallel.ok).toBe(false);
    // The last checkpoint before leaf 111 was at 100: the range after it is named.
    expect(parallel.firstBadLeaf).toBe(100);
    expect(parallel.reason).toMatch(/do not match the signed checkpoint of size 150/);
    expect(parallel.reason).toBe(serial.reason);
  });

  it('the workers hash aligned chunks and flag only the chunk that was tampered with', async () => {
    // Workers only, so they are what is tested here.
    const read = async (path: string) => {
      const out: Array<HashedChunk | AnomalousChunk> = [];
      const chunks = readHashedChunks({
        path,
        end: LEAVES,
        chunkSize: 32,
        workers: 2,
        hashHere: false,
      });
      for await (const c of chunks) out.push(c);
      return out;
    };
    const intact = await read(tampered(''));
    expect(intact.map((c) => c.start)).toEqual(Array.from({ length: 10 }, (_, k) => k * 32));
    expect(intact.some((c) => 'anomaly' in c)).toBe(false);
    const first = intact[0] as HashedChunk;
    expect(first.levels).toHaveLength(6);
    const db = new DatabaseSync(pristine, { readOnly: true });
    const leaf0 = (
      db.prepare('SELECT data FROM leaves WHERE idx = 0').get() as { data: Uint8Array }
    ).data;
    db.close();
    expect(Buffer.from(first.levels[0]!.subarray(0, 32))).toEqual(Buffer.from(hashLeaf(leaf0)));
    // The last chunk (288..299) holds 12 leaves: subtrees of 8 and 4, nothing of 16 or more.
    expect((intact[9] as HashedChunk).levels.map((l) => l.length / 32)).toEqual([12, 6, 3, 1]);
    const edited = await read(
      tampered('UPDATE leaves SET data = ? WHERE idx = 111', Buffer.from('{"x":1}')),
    );
    expect(edited.filter((c) => 'anomaly' in c).map((c) => c.start)).toEqual([96]);
  });
});
