/**
 * The SQLite append transaction: leaves, tree nodes and the new size in one `BEGIN IMMEDIATE` ...
 * `COMMIT`, durable (fsync'd) when it returns under `synchronous = FULL`.
 */
import type { DatabaseSync } from 'node:sqlite';
import type { TreeNode } from '../tree-nodes.ts';
import { StoreConflictError, type AppendEntry } from './types.ts';

/** Appends leaves `[from, from + entries.length)`; throws {@link StoreConflictError} on a race. */
export type SqliteAppend = (
  from: number,
  entries: readonly AppendEntry[],
  nodes: readonly TreeNode[],
) => void;

/** Prepares the append statements on a writable connection. */
export function prepareSqliteAppend(db: DatabaseSync): SqliteAppend {
  const insertLeaf = db.prepare(
    `INSERT INTO leaves (idx, data, record_id, time_ms, event_type, outcome, actor_sub, org, model_name, trace_id)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertNode = db.prepare('INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)');
  const readSize = db.prepare('SELECT size FROM state WHERE id = 1');
  const writeSize = db.prepare('UPDATE state SET size = ? WHERE id = 1');
  return (from, entries, nodes) => {
    db.exec('BEGIN IMMEDIATE');
    try {
      const size = Number((readSize.get() as { size: number }).size);
      if (size !== from) throw new StoreConflictError(`tree size is not ${from}`);
      for (const e of entries) {
        const f = e.fields;
        insertLeaf.run(
          e.index,
          e.data,
          f.recordId,
          f.timeMs,
          f.eventType,
          f.outcome,
          f.actorSub,
          f.org,
          f.modelName,
          f.traceId,
        );
      }
      for (const n of nodes) insertNode.run(n.level, n.index, n.hash);
      writeSize.run(from + entries.length);
      db.exec('COMMIT');
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw err;
    }
  };
}
