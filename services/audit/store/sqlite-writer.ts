/**
 * A writer thread for the SQLite store: `node:sqlite` is synchronous, so on the service's own
 * thread every commit — B-tree inserts and the fsync of `synchronous = FULL` — stalls every
 * gRPC call for its whole duration. On a worker thread the next batch is decoded, validated and
 * hashed while the previous one is being made durable. An append is answered only after the
 * worker's COMMIT returned, so acknowledgements stay durable and in order (one transaction at a
 * time, in submission order).
 */
import { Worker } from 'node:worker_threads';
import type { TreeNode } from '../tree-nodes.ts';
import { StoreConflictError, type AppendEntry } from './types.ts';

/** What the writer thread is given. */
export interface WriterJob {
  path: string;
  maxPages?: number;
  busyTimeoutMs: number;
}

/** A request to the writer thread. */
export type WriterRequest =
  | {
      id: number;
      op: 'append';
      from: number;
      entries: readonly AppendEntry[];
      nodes: readonly TreeNode[];
    }
  | { id: number; op: 'exec'; sql: string; args: Array<string | number | Uint8Array> };

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

/** Its answer. */
export type WriterReply = { id: number; error?: { message: string; conflict: boolean } };

export interface SqliteWriter {
  append(from: number, entries: readonly AppendEntry[], nodes: readonly TreeNode[]): Promise<void>;
  /** Runs one write statement on the writer's connection. */
  run(sql: string, args: Array<string | number | Uint8Array>): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts the writer thread (again, if it died) on first use.
 *
 * @example
 * ```ts
 * const writer = createSqliteWriter({ path, busyTimeoutMs: 5000 });
 * await writer.append(from, entries, nodes);
 * ```
 */
export function createSqliteWriter(job: WriterJob): SqliteWriter {
  let worker: Worker | undefined;
  let nextId = 0;
  const pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();

  const failAll = (err: Error) => {
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  const start = (): Worker => {
    const w = new Worker(new URL('./sqlite-writer-worker.ts', import.meta.url), {
      workerData: job,
    });
    w.on('message', (m: WriterReply) => {
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      // Idle, it must not keep the process alive; busy, it must (someone awaits its answer).
      if (pending.size === 0) w.unref();
      if (!m.error) p.resolve();
      else if (m.error.conflict) p.reject(new StoreConflictError(m.error.message));
      else p.reject(new Error(m.error.message));
    });
    w.on('error', (err) => failAll(err));
    w.on('exit', (code) => {
      if (worker === w) worker = undefined;
      // A commit in flight may or may not have happened: the log re-reads its size.
      failAll(new Error(`the SQLite writer thread stopped (exit code ${code})`));
    });
    return w;
  };
  const send = (request: WithoutId<WriterRequest>): Promise<void> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      worker ??= start();
      worker.ref();
      worker.postMessage({ ...request, id });
    });

  return {
    append: (from, entries, nodes) => send({ op: 'append', from, entries, nodes }),
    run: (sql, args) => send({ op: 'exec', sql, args }),
    close: async () => {
      const w = worker;
      worker = undefined;
      if (!w) return;
      // Every request sent was answered or is answered before the thread reads this.
      w.ref();
      await new Promise<void>((resolve) => {
        w.once('exit', () => resolve());
        w.postMessage({ id: -1, op: 'close' });
      });
    },
  };
}
