/**
 * SQLite storage through Node's built-in `node:sqlite`: WAL journal, `synchronous = FULL` so a
 * commit is fsync'd before `append` returns. The default, embedded store.
 *
 * @example
 * ```ts
 * const store = openSqliteStore({ path: '/var/lib/bulwark/audit.db' });
 * ```
 */
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { nodeKey, type NodeId, type TreeNode } from '../tree-nodes.ts';
import { prepareSqliteAppend } from './sqlite-append.ts';
import {
  type AppendEntry,
  type AuditStore,
  type LeafQuery,
  type StoredCheckpoint,
  type StoredLeaf,
} from './types.ts';

export interface SqliteStoreOptions {
  /** Database file (created when missing). */
  path: string;
  /** Open without write access (offline verification and export). Default false. */
  readOnly?: boolean;
  /**
   * Cap on the database size in pages (`PRAGMA max_page_count`), a storage quota: appends past
   * it fail as on a full disk. Default: no cap.
   */
  maxPages?: number;
  /** How long to wait for another process's write lock, in ms. Default 5000. */
  busyTimeoutMs?: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS leaves (
  idx INTEGER PRIMARY KEY,
  data BLOB NOT NULL,
  record_id TEXT NOT NULL,
  time_ms INTEGER NOT NULL,
  event_type TEXT NOT NULL,
  outcome TEXT NOT NULL,
  actor_sub TEXT,
  org TEXT,
  model_name TEXT,
  trace_id TEXT
);
CREATE INDEX IF NOT EXISTS leaves_time ON leaves (time_ms);
CREATE INDEX IF NOT EXISTS leaves_actor ON leaves (actor_sub);
CREATE INDEX IF NOT EXISTS leaves_org ON leaves (org);
CREATE INDEX IF NOT EXISTS leaves_model ON leaves (model_name);
CREATE INDEX IF NOT EXISTS leaves_trace ON leaves (trace_id);
CREATE TABLE IF NOT EXISTS nodes (
  level INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  hash BLOB NOT NULL,
  PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
  size INTEGER PRIMARY KEY,
  root BLOB NOT NULL,
  note TEXT NOT NULL,
  signed_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL);
INSERT OR IGNORE INTO state (id, size) VALUES (1, 0);
`;

type Row = Record<string, unknown>;

/**
 * A Buffer over a row's own bytes (node:sqlite hands out a fresh array per value): no copy. A
 * value tampered into another type (text, number) gives its text bytes, so verification names
 * it instead of crashing.
 */
function view(value: unknown): Buffer {
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return Buffer.from(String(value ?? ''), 'utf8');
}

function toLeaf(row: Row): StoredLeaf {
  return {
    index: Number(row.idx),
    data: Buffer.from(row.data as Uint8Array),
    hash: row.hash ? Buffer.from(row.hash as Uint8Array) : undefined,
  };
}

function toCheckpoint(row: Row): StoredCheckpoint {
  return {
    size: Number(row.size),
    root: Buffer.from(row.root as Uint8Array),
    note: String(row.note),
    signedAtMs: Number(row.signed_at_ms),
  };
}

/** Opens (and creates) a SQLite audit store. */
export function openSqliteStore(options: SqliteStoreOptions): AuditStore {
  const { path, readOnly = false, maxPages, busyTimeoutMs = 5000 } = options;
  const db = new DatabaseSync(path, { readOnly, timeout: busyTimeoutMs });
  if (!readOnly) {
    db.exec('PRAGMA journal_mode = WAL');
    db.exec('PRAGMA synchronous = FULL');
    db.exec(SCHEMA);
  }
  if (maxPages !== undefined) db.exec(`PRAGMA max_page_count = ${Math.floor(maxPages)}`);

  const stmts = new Map<string, StatementSync>();
  const prep = (sql: string): StatementSync => {
    let s = stmts.get(sql);
    if (!s) {
      s = db.prepare(sql);
      stmts.set(sql, s);
    }
    return s;
  };

  const fileBacked = path !== '' && path !== ':memory:' && !path.startsWith('file:');
  const appendHere = readOnly ? undefined : prepareSqliteAppend(db);

  const readLeafRows = db.prepare(
    'SELECT idx, data FROM leaves WHERE idx >= ? AND idx < ? ORDER BY idx',
  );
  readLeafRows.setReturnArrays(true);
  const readLeafHashes = db.prepare(
    'SELECT idx, hash FROM nodes WHERE level = 0 AND idx >= ? AND idx < ? ORDER BY idx',
  );
  readLeafHashes.setReturnArrays(true);
  const readNodeRows = db.prepare(
    'SELECT idx, hash FROM nodes WHERE level = ? AND idx >= ? AND idx < ?',
  );
  readNodeRows.setReturnArrays(true);

  const size = (): number =>
    Number((prep('SELECT size FROM state WHERE id = 1').get() as Row).size);

  return {
    kind: 'sqlite',
    ...(fileBacked ? { path } : {}),
    size: async () => size(),
    append: async (from: number, entries: readonly AppendEntry[], nodes: readonly TreeNode[]) => {
      if (!appendHere) throw new Error('store is read-only');
      appendHere(from, entries, nodes);
    },
    getNodes: async (ids: readonly NodeId[]) => {
      const out = new Map<string, Buffer>();
      const stmt = prep('SELECT hash FROM nodes WHERE level = ? AND idx = ?');
      for (const { level, index } of ids) {
        const row = stmt.get(level, index) as Row | undefined;
        if (row) out.set(nodeKey(level, index), Buffer.from(row.hash as Uint8Array));
      }
      return out;
    },
    readNodeRange: async (level: number, start: number, end: number) => {
      const rows = readNodeRows.all(level, start, end) as unknown as Array<[number, Uint8Array]>;
      const out = new Map<number, Buffer>();
      for (const [idx, hash] of rows) out.set(idx, view(hash));
      return out;
    },
    readLeaves: async (start: number, end: number) => {
      // Two range scans in index order, merged here: much cheaper than a per-row join. Each
      // row's bytes are fresh, so they are wrapped, not copied.
      const leafRows = readLeafRows.all(start, end) as unknown as Array<[number, Uint8Array]>;
      const hashRows = readLeafHashes.all(start, end) as unknown as Array<[number, Uint8Array]>;
      const out: StoredLeaf[] = new Array(leafRows.length);
      let h = 0;
      for (let i = 0; i < leafRows.length; i++) {
        const [index, data] = leafRows[i] as [number, Uint8Array];
        while (h < hashRows.length && (hashRows[h] as [number, Uint8Array])[0] < index) h++;
        const row = hashRows[h];
        out[i] = {
          index,
          data: view(data),
          hash: row && row[0] === index ? view(row[1]) : undefined,
        };
      }
      return out;
    },
    query: async (q: LeafQuery) => {
      const where = ['idx >= ?', 'idx < ?'];
      const args: Array<string | number> = [q.startIndex, q.endIndex];
      const eq = (col: string, v: string | undefined) => {
        if (v !== undefined) {
          where.push(`${col} = ?`);
          args.push(v);
        }
      };
      if (q.fromTimeMs !== undefined) {
        where.push('time_ms >= ?');
        args.push(q.fromTimeMs);
      }
      if (q.toTimeMs !== undefined) {
        where.push('time_ms < ?');
        args.push(q.toTimeMs);
      }
      eq('actor_sub', q.actorSub);
      eq('org', q.org);
      eq('model_name', q.modelName);
      eq('event_type', q.eventType);
      eq('outcome', q.outcome);
      eq('trace_id', q.traceId);
      args.push(q.limit);
      const sql = `SELECT idx, data FROM leaves WHERE ${where.join(' AND ')} ORDER BY idx LIMIT ?`;
      return (prep(sql).all(...args) as Row[]).map(toLeaf);
    },
    saveCheckpoint: async (cp: StoredCheckpoint) => {
      prep(
        'INSERT OR REPLACE INTO checkpoints (size, root, note, signed_at_ms) VALUES (?, ?, ?, ?)',
      ).run(cp.size, cp.root, cp.note, cp.signedAtMs);
    },
    listCheckpoints: async () =>
      (prep('SELECT * FROM checkpoints ORDER BY size').all() as Row[]).map(toCheckpoint),
    latestCheckpoint: async () => {
      const row = prep('SELECT * FROM checkpoints ORDER BY size DESC LIMIT 1').get() as
        Row | undefined;
      return row ? toCheckpoint(row) : undefined;
    },
    getMeta: async (key: string) => {
      const row = prep('SELECT value FROM meta WHERE key = ?').get(key) as Row | undefined;
      return row ? String(row.value) : undefined;
    },
    setMeta: async (key: string, value: string) => {
      prep('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run(key, value);
    },
    close: async () => {
      if (db.isOpen) db.close();
    },
  };
}
