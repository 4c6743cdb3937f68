/**
 * Reads and hashes a SQLite audit database for verification (see `verify-chunk-hasher.ts`),
 * aligned chunk by chunk, on this thread and on worker threads that share one chunk counter
 * (`SharedArrayBuffer` + `Atomics`): whoever is free takes the next chunk, so a worker that is
 * still starting up, or a core that is busy elsewhere, slows nobody down. Chunks come back in
 * order, as flat arrays of node hashes per level; no thread runs more than a few chunks ahead.
 *
 * @example
 * ```ts
 * for await (const chunk of readHashedChunks({ path, end: size, chunkSize: 32_768, workers: 1 })) { ... }
 * ```
 */
import { Worker } from 'node:worker_threads';
import {
  openChunkHasher,
  type AnomalousChunk,
  type ChunkHasher,
  type HashedChunk,
} from './verify-chunk-hasher.ts';

export type { AnomalousChunk, HashedChunk };

/** Slots of the shared control array. */
export const CONTROL = { next: 0, consumed: 1, stop: 2 } as const;

/** Chunks taken but not yet consumed, at most (bounds memory). */
export const MAX_AHEAD = 6;

/** What a worker is given. */
export interface ReaderJob {
  /** SQLite database file. */
  path: string;
  /** Leaves `[0, end)` are read. */
  end: number;
  /** A power of two: chunks start at multiples of it, so each holds complete subtrees. */
  chunkSize: number;
  /** `Int32Array` over it: next chunk to take, chunks consumed, stop flag. */
  control: SharedArrayBuffer;
}

/** A message from a worker. */
export type ChunkMessage =
  { chunk: number; result: HashedChunk | AnomalousChunk } | { done: true } | { error: string };

/** Hashed chunks of `[0, end)`, in order, from this thread and `workers` worker threads. */
export async function* readHashedChunks(options: {
  path: string;
  end: number;
  chunkSize: number;
  workers: number;
  /** Whether this thread hashes chunks too. Default true (false needs a worker). */
  hashHere?: boolean;
}): AsyncGenerator<HashedChunk | AnomalousChunk> {
  const { path, end, chunkSize } = options;
  if (!(chunkSize > 0 && Number.isInteger(Math.log2(chunkSize))))
    throw new RangeError('chunkSize must be a power of two');
  const total = Math.ceil(end / chunkSize);
  const control = new SharedArrayBuffer(3 * 4);
  const ctl = new Int32Array(control);
  const results = new Map<number, HashedChunk | AnomalousChunk>();
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const poke = () => wake?.();
  const hashHere = options.hashHere ?? true;
  const count = Math.max(hashHere ? 0 : 1, Math.min(options.workers, total - (hashHere ? 1 : 0)));
  const workers = Array.from({ length: count }, () => {
    const worker = new Worker(new URL('./verify-reader-worker.ts', import.meta.url), {
      workerData: { path, end, chunkSize, control } satisfies ReaderJob,
    });
    let finished = false;
    worker.on('message', (m: ChunkMessage) => {
      if ('result' in m) results.set(m.chunk, m.result);
      else if ('error' in m) failure ??= new Error(m.error);
      else finished = true;
      poke();
    });
    worker.on('error', (err) => {
      failure ??= err;
      poke();
    });
    worker.on('exit', () => {
      // Stopped without saying it was done (killed, out of memory): what it took never comes.
      if (!finished) failure ??= new Error('a verification worker stopped');
      poke();
    });
    return worker;
  });
  let own: ChunkHasher | undefined;
  try {
    for (let k = 0; k < total; k++) {
      while (!results.has(k)) {
        const taken = Atomics.load(ctl, CONTROL.next);
        // A chunk a failed worker took never comes (one nobody took yet, this thread takes).
        if (failure && taken > k) throw failure;
        if (hashHere && taken < total && taken - k < MAX_AHEAD) {
          const chunk = Atomics.add(ctl, CONTROL.next, 1);
          if (chunk < total) {
            own ??= openChunkHasher(path);
            const start = chunk * chunkSize;
            results.set(chunk, own.hashChunk(start, Math.min(start + chunkSize, end)));
            // Let the workers' messages in before deciding again.
            await new Promise<void>((r) => setImmediate(r));
            continue;
          }
        }
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
      const chunk = results.get(k) as HashedChunk | AnomalousChunk;
      results.delete(k);
      Atomics.store(ctl, CONTROL.consumed, k + 1);
      Atomics.notify(ctl, CONTROL.consumed);
      yield chunk;
    }
  } finally {
    own?.close();
    Atomics.store(ctl, CONTROL.stop, 1);
    Atomics.notify(ctl, CONTROL.consumed);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
