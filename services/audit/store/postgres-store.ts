/**
 * PostgreSQL storage through `pg`, for scale: several audit replicas may share one database;
 * appends serialise on the `state` row, so the tree stays one sequence. Durability follows the
 * server's `synchronous_commit` (on by default: the commit is flushed before it returns).
 *
 * @example
 * ```ts
 * const store = await openPostgresStore({ connectionString: 'postgres://audit@db/bulwark' });
 * ```
 */
import pg from 'pg';
import { nodeKey, type NodeId, type TreeNode } from '../tree-nodes.ts';
import {
  StoreConflictError,
  type AppendEntry,
  type AuditStore,
  type LeafQuery,
  type StoredCheckpoint,
  type StoredLeaf,
} from './types.ts';

export interface PostgresStoreOptions {
  connectionString: string;
  /** Largest pool size. Default 4. */
  maxConnections?: number;
  /** Schema (namespace) of the tables. Default `public`. */
  schema?: string;
}

const schemaSql = (s: string) => `
CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.leaves (
  idx BIGINT PRIMARY KEY,
  data BYTEA NOT NULL,
  record_id TEXT NOT NULL,
  time_ms BIGINT NOT NULL,
  event_type TEXT NOT NULL,
  outcome TEXT NOT NULL,
  actor_sub TEXT,
  org TEXT,
  model_name TEXT,
  trace_id TEXT
);
CREATE INDEX IF NOT EXISTS leaves_time ON ${s}.leaves (time_ms);
CREATE INDEX IF NOT EXISTS leaves_actor ON ${s}.leaves (actor_sub);
CREATE INDEX IF NOT EXISTS leaves_org ON ${s}.leaves (org);
CREATE INDEX IF NOT EXISTS leaves_model ON ${s}.leaves (model_name);
CREATE INDEX IF NOT EXISTS leaves_trace ON ${s}.leaves (trace_id);
CREATE TABLE IF NOT EXISTS ${s}.nodes (
  level SMALLINT NOT NULL,
  idx BIGINT NOT NULL,
  hash BYTEA NOT NULL,
  PRIMARY KEY (level, idx)
);
CREATE TABLE IF NOT EXISTS ${s}.checkpoints (
  size BIGINT PRIMARY KEY,
  root BYTEA NOT NULL,
  note TEXT NOT NULL,
  signed_at_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS ${s}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ${s}.state (id INT PRIMARY KEY CHECK (id = 1), size BIGINT NOT NULL);
INSERT INTO ${s}.state (id, size) VALUES (1, 0) ON CONFLICT DO NOTHING;
`;

type Row = Record<string, unknown>;

function toLeaf(row: Row): StoredLeaf {
  return { index: Number(row.idx), data: row.data as Buffer };
}

function toCheckpoint(row: Row): StoredCheckpoint {
  return {
    size: Number(row.size),
    root: row.root as Buffer,
    note: String(row.note),
    signedAtMs: Number(row.signed_at_ms),
  };
}

/** Connects, creates the tables when missing, and returns the store. */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<AuditStore> {
  const { connectionString, maxConnections = 4, schema = 'public' } = options;
  if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error('schema must be a plain identifier');
  const s = schema;
  const pool = new pg.Pool({ connectionString, max: maxConnections });
  // An idle client that loses its server must not crash the process; the next query fails.
  pool.on('error', () => undefined);
  const client = await pool.connect();
  try {
    // Two replicas starting together must not race on CREATE.
    await client.query('SELECT pg_advisory_lock(727274)');
    await client.query(schemaSql(s));
    await client.query('SELECT pg_advisory_unlock(727274)');
  } finally {
    client.release();
  }

  return {
    kind: 'postgres',
    size: async () =>
      Number((await pool.query(`SELECT size FROM ${s}.state WHERE id = 1`)).rows[0].size),
    append: async (from: number, entries: readonly AppendEntry[], nodes: readonly TreeNode[]) => {
      const c = await pool.connect();
      let broken = false;
      try {
        await c.query('BEGIN');
        const cur = await c.query(`SELECT size FROM ${s}.state WHERE id = 1 FOR UPDATE`);
        if (Number(cur.rows[0].size) !== from)
          throw new StoreConflictError(`tree size is not ${from}`);
        await c.query(
          `INSERT INTO ${s}.leaves (idx, data, record_id, time_ms, event_type, outcome, actor_sub, org, model_name, trace_id)
           SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])`,
          [
            entries.map((e) => e.index),
            entries.map((e) => Buffer.from(e.data)),
            entries.map((e) => e.fields.recordId),
            entries.map((e) => e.fields.timeMs),
            entries.map((e) => e.fields.eventType),
            entries.map((e) => e.fields.outcome),
            entries.map((e) => e.fields.actorSub),
            entries.map((e) => e.fields.org),
            entries.map((e) => e.fields.modelName),
            entries.map((e) => e.fields.traceId),
          ],
        );
        await c.query(
          `INSERT INTO ${s}.nodes (level, idx, hash) SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])`,
          [
            nodes.map((n) => n.level),
            nodes.map((n) => n.index),
            nodes.map((n) => Buffer.from(n.hash)),
          ],
        );
        await c.query(`UPDATE ${s}.state SET size = $1 WHERE id = 1`, [from + entries.length]);
        await c.query('COMMIT');
      } catch (err) {
        try {
          await c.query('ROLLBACK');
        } catch {
          broken = true;
        }
        throw err;
      } finally {
        c.release(broken);
      }
    },
    getNodes: async (ids: readonly NodeId[]) => {
      const out = new Map<string, Buffer>();
      if (ids.length === 0) return out;
      const res = await pool.query(
        `SELECT n.level, n.idx, n.hash FROM ${s}.nodes n
         JOIN unnest($1::smallint[], $2::bigint[]) AS k(level, idx) ON n.level = k.level AND n.idx = k.idx`,
        [ids.map((i) => i.level), ids.map((i) => i.index)],
      );
      for (const row of res.rows as Row[])
        out.set(nodeKey(Number(row.level), Number(row.idx)), row.hash as Buffer);
      return out;
    },
    readNodeRange: async (level: number, start: number, end: number) => {
      const res = await pool.query(
        `SELECT idx, hash FROM ${s}.nodes WHERE level = $1 AND idx >= $2 AND idx < $3`,
        [level, start, end],
      );
      return new Map((res.rows as Row[]).map((r) => [Number(r.idx), r.hash as Buffer]));
    },
    readLeaves: async (start: number, end: number) => {
      const [rows, hashes] = await Promise.all([
        pool.query(`SELECT idx, data FROM ${s}.leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx`, [
          start,
          end,
        ]),
        pool.query(`SELECT idx, hash FROM ${s}.nodes WHERE level = 0 AND idx >= $1 AND idx < $2`, [
          start,
          end,
        ]),
      ]);
      const byIndex = new Map((hashes.rows as Row[]).map((h) => [Number(h.idx), h.hash as Buffer]));
      return (rows.rows as Row[]).map((row) => ({
        index: Number(row.idx),
        data: row.data as Buffer,
        hash: byIndex.get(Number(row.idx)),
      }));
    },
    query: async (q: LeafQuery) => {
      const args: unknown[] = [q.startIndex, q.endIndex];
      const where = ['idx >= $1', 'idx < $2'];
      const add = (cond: string, v: unknown) => {
        if (v !== undefined) {
          args.push(v);
          where.push(cond.replace('?', `$${args.length}`));
        }
      };
      add('time_ms >= ?', q.fromTimeMs);
      add('time_ms < ?', q.toTimeMs);
      add('actor_sub = ?', q.actorSub);
      add('org = ?', q.org);
      add('model_name = ?', q.modelName);
      add('event_type = ?', q.eventType);
      add('outcome = ?', q.outcome);
      add('trace_id = ?', q.traceId);
      args.push(q.limit);
      const res = await pool.query(
        `SELECT idx, data FROM ${s}.leaves WHERE ${where.join(' AND ')} ORDER BY idx LIMIT $${args.length}`,
        args,
      );
      return res.rows.map(toLeaf);
    },
    saveCheckpoint: async (cp: StoredCheckpoint) => {
      await pool.query(
        `INSERT INTO ${s}.checkpoints (size, root, note, signed_at_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (size) DO UPDATE SET root = EXCLUDED.root, note = EXCLUDED.note, signed_at_ms = EXCLUDED.signed_at_ms`,
        [cp.size, cp.root, cp.note, cp.signedAtMs],
      );
    },
    listCheckpoints: async () =>
      (await pool.query(`SELECT * FROM ${s}.checkpoints ORDER BY size`)).rows.map(toCheckpoint),
    latestCheckpoint: async () => {
      const res = await pool.query(`SELECT * FROM ${s}.checkpoints ORDER BY size DESC LIMIT 1`);
      return res.rows[0] ? toCheckpoint(res.rows[0] as Row) : undefined;
    },
    getMeta: async (key: string) => {
      const res = await pool.query(`SELECT value FROM ${s}.meta WHERE key = $1`, [key]);
      return res.rows[0] ? String((res.rows[0] as Row).value) : undefined;
    },
    setMeta: async (key: string, value: string) => {
      await pool.query(
        `INSERT INTO ${s}.meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
        [key, value],
      );
    },
    close: async () => {
      await pool.end();
    },
  };
}
