/**
 * Worker thread of {@link readPackedChunks}: reads a SQLite audit database in big ranges and
 * packs each range into a few flat arrays, transferred (not copied) to the verifying thread,
 * so reading and hashing run on two cores at once. Each leaf is packed behind a 0x00 byte, the
 * RFC 9162 leaf prefix, so the verifier hashes it in place.
 */
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';
import type { PackedChunk, PackedLevel, ReaderJob } from './verify-reader.ts';

const job = workerData as ReaderJob;
const port = parentPort;
if (!port) throw new Error('verify-reader-worker runs as a worker thread');

const db = new DatabaseSync(job.path, { readOnly: true });
const leafRows = db.prepare('SELECT idx, data FROM leaves WHERE idx >= ? AND idx < ? ORDER BY idx');
leafRows.setReturnArrays(true);
const nodeRows = db.prepare(
  'SELECT idx, hash FROM nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx',
);
nodeRows.setReturnArrays(true);

type Row = [number, Uint8Array];

function packLevel(level: number, lo: number, hi: number): PackedLevel {
  const rows = nodeRows.all(level, lo, hi) as unknown as Row[];
  const indexes = new Float64Array(rows.length);
  const hashes = new Uint8Array(rows.length * 32);
  const malformed = new Uint8Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const [idx, hash] = rows[i] as Row;
    indexes[i] = idx;
    if (hash.length === 32) hashes.set(hash, i * 32);
    else malformed[i] = 1;
  }
  return { level, lo, hi, indexes, hashes, malformed };
}

function pack(start: number, end: number): PackedChunk {
  const rows = leafRows.all(start, end) as unknown as Row[];
  const count = rows.length;
  let total = 0;
  for (let i = 0; i < count; i++) total += (rows[i] as Row)[1].length + 1;
  const data = new Uint8Array(total);
  const offsets = new Uint32Array(count + 1);
  const indexes = new Float64Array(count);
  let off = 0;
  for (let i = 0; i < count; i++) {
    const [idx, bytes] = rows[i] as Row;
    indexes[i] = idx;
    offsets[i] = off;
    data[off] = 0x00;
    data.set(bytes, off + 1);
    off += bytes.length + 1;
  }
  offsets[count] = off;
  // Nodes completed by appending leaves [start, end): node (L, i) completes with leaf
  // (i + 1) * 2^L - 1. Level 0 is the stored leaf hashes themselves.
  const levels: PackedLevel[] = [];
  for (let level = 0, width = 1; width <= end; level++, width *= 2) {
    const lo = Math.ceil((start + 1) / width) - 1;
    const hi = Math.floor(end / width);
    if (hi > lo) levels.push(packLevel(level, lo, hi));
  }
  return { start, end, indexes, offsets, data, levels };
}

let credits = 0;
let next = 0;
const pump = () => {
  try {
    while (credits > 0 && next < job.end) {
      credits--;
      const end = Math.min(next + job.chunkSize, job.end);
      const chunk = pack(next, end);
      next = end;
      const transfer = [chunk.indexes.buffer, chunk.offsets.buffer, chunk.data.buffer];
      for (const l of chunk.levels)
        transfer.push(l.indexes.buffer, l.hashes.buffer, l.malformed.buffer);
      port.postMessage({ chunk }, transfer as ArrayBuffer[]);
    }
    if (next >= job.end) port.postMessage({ done: true });
  } catch (err) {
    port.postMessage({ error: (err as Error).message });
  }
};
port.on('message', (m: number) => {
  credits += m;
  pump();
});
