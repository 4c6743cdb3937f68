/**
 * The parallel SQLite verifier (worker-thread reader, packed chunks) must reach exactly the
 * verdict of the one-thread verifier: same root, same first bad leaf, same reason, on an
 * intact log and on every kind of tampering, across chunk boundaries.
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
import { verifyStore, type VerifyResult } from './verify.ts';

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
  ])('finds %s and names the same leaf', async (_what, sql, arg) => {
    const [parallel, serial] = await both(tampered(sql, ...(arg === undefined ? [] : [arg])));
    expect(parallel.ok).toBe(false);
    expect(parallel.firstBadLeaf).toEqual(expect.any(Number));
    expect(parallel).toEqual(serial);
  });
});
