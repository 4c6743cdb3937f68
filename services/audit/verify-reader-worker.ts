/**
 * Worker thread of {@link readHashedChunks}: takes chunks from the shared counter while it is
 * fewer than `MAX_AHEAD` chunks ahead of the verifying thread, hashes them (see
 * `verify-chunk-hasher.ts`), and sends their node hashes back in transferred (not copied) arrays.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openChunkHasher } from './verify-chunk-hasher.ts';
import { CONTROL, MAX_AHEAD, type ChunkMessage, type ReaderJob } from './verify-reader.ts';

const job = workerData as ReaderJob;
const port = parentPort;
if (!port) throw new Error('verify-reader-worker runs as a worker thread');
const ctl = new Int32Array(job.control);
const total = Math.ceil(job.end / job.chunkSize);

try {
  const hasher = openChunkHasher(job.path);
  for (;;) {
    const consumed = Atomics.load(ctl, CONTROL.consumed);
    if (Atomics.load(ctl, CONTROL.stop)) break;
    if (Atomics.load(ctl, CONTROL.next) - consumed >= MAX_AHEAD) {
      // Far enough ahead: sleep until the verifier consumes a chunk (or stops us).
      Atomics.wait(ctl, CONTROL.consumed, consumed, 100);
      continue;
    }
    const chunk = Atomics.add(ctl, CONTROL.next, 1);
    if (chunk >= total) break;
    const start = chunk * job.chunkSize;
    const result = hasher.hashChunk(start, Math.min(start + job.chunkSize, job.end));
    port.postMessage(
      { chunk, result } satisfies ChunkMessage,
      'levels' in result ? result.levels.map((l) => l.buffer as ArrayBuffer) : [],
    );
  }
  hasher.close();
  port.postMessage({ done: true } satisfies ChunkMessage);
} catch (err) {
  port.postMessage({ error: (err as Error).message } satisfies ChunkMessage);
}
