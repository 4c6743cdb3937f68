/**
 * The writer thread of `sqlite-writer.ts`: its own connection to the database (WAL,
 * `synchronous = FULL`, the same busy timeout and page cap as the store), running append
 * transactions and single write statements in the order they arrive.
 */
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';
import { prepareSqliteAppend } from './sqlite-append.ts';
import type { WriterJob, WriterReply, WriterRequest } from './sqlite-writer.ts';
import { StoreConflictError } from './types.ts';

const job = workerData as WriterJob;
const port = parentPort;
if (!port) throw new Error('sqlite-writer-worker runs as a worker thread');

const db = new DatabaseSync(job.path, { timeout: job.busyTimeoutMs });
db.exec('PRAGMA journal_mode = WAL');
db.exec('PRAGMA synchronous = FULL');
if (job.maxPages !== undefined) db.exec(`PRAGMA max_page_count = ${Math.floor(job.maxPages)}`);
const append = prepareSqliteAppend(db);
const statements = new Map<string, StatementSync>();

port.on('message', (m: WriterRequest | { id: -1; op: 'close' }) => {
  if (m.op === 'close') {
    db.close();
    process.exit(0);
  }
  let reply: WriterReply;
  try {
    if (m.op === 'append') append(m.from, m.entries, m.nodes);
    else {
      let s = statements.get(m.sql);
      if (!s) statements.set(m.sql, (s = db.prepare(m.sql)));
      s.run(...m.args);
    }
    reply = { id: m.id };
  } catch (err) {
    reply = {
      id: m.id,
      error: {
        message: (err as Error).message,
        conflict: err instanceof StoreConflictError,
      },
    };
  }
  port.postMessage(reply);
});
