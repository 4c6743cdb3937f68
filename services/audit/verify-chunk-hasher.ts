/**
 * Hashes aligned chunks of a SQLite audit database for whole-log verification: the leaves of
 * `[start, end)` and every complete subtree inside them (RFC 9162), compared with the stored
 * tree nodes of the chunk. Used by the reader workers and by the verifying thread itself.
 *
 * SQLite does the row work in C: one aggregate query packs a chunk's leaves into one blob (each
 * behind a 0x00 byte, the leaf prefix, so leaves are hashed in place) and one per level packs the
 * stored nodes, so a whole level is compared with a single `Buffer.equals`. Hashes come back from
 * `crypto.hash` as latin1 ("binary") strings, which costs a third of a Buffer result.
 */
import { hash } from 'node:crypto';
import { DatabaseSync } from 'node:sqlite';

/** Leaves `[start, end)` hashed: `levels[l]` holds the complete level-`l` subtrees, 32 bytes each. */
export interface HashedChunk {
  start: number;
  end: number;
  levels: Uint8Array[];
}

/** A chunk whose rows or stored nodes are not as expected: verify it the careful way. */
export interface AnomalousChunk {
  start: number;
  end: number;
  anomaly: string;
}

export interface ChunkHasher {
  /** `start` must be a multiple of a power of two at least `end - start`. */
  hashChunk(start: number, end: number): HashedChunk | AnomalousChunk;
  close(): void;
}

interface Aggregate {
  n: number;
  lo: number | null;
  hi: number | null;
  bad: number | null;
}

const complete = (a: Aggregate, lo: number, hi: number) =>
  a.n === hi - lo && a.lo === lo && a.hi === hi - 1 && !a.bad;

const view = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/**
 * Opens a database read-only for chunk hashing.
 *
 * @example
 * ```ts
 * const hasher = openChunkHasher('/var/lib/bulwark/audit.sqlite');
 * const chunk = hasher.hashChunk(0, 32_768);
 * ```
 */
export function openChunkHasher(path: string): ChunkHasher {
  const db = new DatabaseSync(path, { readOnly: true });
  // No ORDER BY inside the aggregates (it triples their cost): a primary-key range scan yields
  // ascending rows. Nothing depends on that for correctness: rows in another order would not
  // match the hashes or lengths, and the chunk would be verified again the careful way.
  const leafQuery = db.prepare(
    `SELECT count(*) AS n, min(idx) AS lo, max(idx) AS hi, sum(typeof(data) <> 'blob') AS bad,
       group_concat(length(data), ',') AS lens,
       CAST(X'00' || group_concat(data, X'00') AS BLOB) AS data
     FROM leaves WHERE idx >= ? AND idx < ?`,
  );
  const nodeQuery = db.prepare(
    `SELECT count(*) AS n, min(idx) AS lo, max(idx) AS hi,
       sum(typeof(hash) <> 'blob' OR length(hash) <> 32) AS bad,
       CAST(group_concat(hash, '') AS BLOB) AS hashes
     FROM nodes WHERE level = ? AND idx >= ? AND idx < ?`,
  );
  // Interior node input 0x01 || left || right, reused for every node.
  const scratch = Buffer.alloc(65);
  scratch[0] = 0x01;

  const hashChunk = (start: number, end: number): HashedChunk | AnomalousChunk => {
    const anomaly = (what: string) => ({ start, end, anomaly: what });
    const leaves = leafQuery.get(start, end) as unknown as Aggregate & {
      lens: string | null;
      data: Uint8Array | null;
    };
    if (!complete(leaves, start, end) || !leaves.lens || !leaves.data)
      return anomaly(`leaves ${start}..${end - 1} are not all present as stored blobs`);
    const n = end - start;
    const data = view(leaves.data);
    const lens = leaves.lens;
    // Unpooled (allocUnsafeSlow): each level's own ArrayBuffer can be transferred.
    const level0 = Buffer.allocUnsafeSlow(n * 32);
    let p = 0;
    let off = 0;
    for (let i = 0; i < n; i++) {
      let len = 0;
      for (let c = lens.charCodeAt(p); c >= 48 && c <= 57; c = lens.charCodeAt(++p))
        len = len * 10 + c - 48;
      p++;
      const leafEnd = off + 1 + len;
      if (leafEnd > data.length) return anomaly(`leaves ${start}..${end - 1} do not pack`);
      level0.write(hash('sha256', data.subarray(off, leafEnd), 'binary'), i * 32, 'binary');
      off = leafEnd;
    }
    if (off !== data.length) return anomaly(`leaves ${start}..${end - 1} do not pack`);
    const levels = [level0];
    for (let level = 1, count = n >> 1; count > 0; level++, count >>= 1) {
      const below = levels[level - 1] as Buffer;
      const out = Buffer.allocUnsafeSlow(count * 32);
      for (let j = 0; j < count; j++) {
        below.copy(scratch, 1, j * 64, j * 64 + 64);
        out.write(hash('sha256', scratch, 'binary'), j * 32, 'binary');
      }
      levels.push(out);
    }
    for (let level = 0; level < levels.length; level++) {
      const computed = levels[level] as Buffer;
      const lo = start / 2 ** level;
      const hi = lo + computed.length / 32;
      const stored = nodeQuery.get(level, lo, hi) as unknown as Aggregate & {
        hashes: Uint8Array | null;
      };
      if (!complete(stored, lo, hi) || !stored.hashes || !view(stored.hashes).equals(computed))
        return anomaly(`stored level ${level} nodes ${lo}..${hi - 1} do not match the leaves`);
    }
    return {
      start,
      end,
      levels: levels.map((b) => new Uint8Array(b.buffer, b.byteOffset, b.length)),
    };
  };
  return { hashChunk, close: () => db.close() };
}
