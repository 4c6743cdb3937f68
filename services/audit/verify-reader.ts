/**
 * Reads a SQLite audit database for verification on a worker thread (see
 * `verify-reader-worker.ts`), a few chunks ahead of the verifier, so SQLite reads and SHA-256
 * hashing overlap on two cores. Chunks arrive packed in flat arrays (no per-leaf objects).
 *
 * @example
 * ```ts
 * for await (const chunk of readPackedChunks({ path, end: size, chunkSize: 50_000 })) { ... }
 * ```
 */
import { Worker } from 'node:worker_threads';

export interface ReaderJob {
  /** SQLite database file. */
  path: string;
  /** Leaves `[0, end)` are read. */
  end: number;
  chunkSize: number;
}

/** Stored nodes of one level with index in `[lo, hi)`, ascending. */
export interface PackedLevel {
  level: number;
  lo: number;
  hi: number;
  indexes: Float64Array;
  /** 32 bytes per node, in the order of `indexes`. */
  hashes: Uint8Array;
  /** 1 where the stored hash is not 32 bytes long (it matches nothing). */
  malformed: Uint8Array;
}

/** Leaves `[start, end)` as stored (rows may be missing), and the nodes they complete. */
export interface PackedChunk {
  start: number;
  end: number;
  indexes: Float64Array;
  /** Leaf `i` is `data[offsets[i] + 1, offsets[i + 1])`; `data[offsets[i]]` is 0x00. */
  offsets: Uint32Array;
  data: Uint8Array;
  /** Level 0 (stored leaf hashes) first, then each higher level with nodes in the range. */
  levels: PackedLevel[];
}

type WorkerMessage = { chunk: PackedChunk } | { done: true } | { error: string };

/** Chunks read ahead before the verifier asks for them. */
const READ_AHEAD = 3;

/** Packed chunks of `[0, end)`, read by a worker thread. */
export async function* readPackedChunks(job: ReaderJob): AsyncGenerator<PackedChunk> {
  const worker = new Worker(new URL('./verify-reader-worker.ts', import.meta.url), {
    workerData: job,
  });
  const inbox: WorkerMessage[] = [];
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  let exited = false;
  worker.on('message', (m: WorkerMessage) => {
    inbox.push(m);
    wake?.();
  });
  worker.on('error', (err) => {
    failure = err;
    wake?.();
  });
  worker.on('exit', () => {
    exited = true;
    wake?.();
  });
  try {
    worker.postMessage(READ_AHEAD);
    for (;;) {
      while (inbox.length === 0) {
        if (failure) throw failure;
        if (exited) throw new Error('the verification reader stopped');
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
      const m = inbox.shift() as WorkerMessage;
      if ('error' in m) throw new Error(m.error);
      if ('done' in m) return;
      worker.postMessage(1);
      yield m.chunk;
    }
  } finally {
    await worker.terminate();
  }
}
