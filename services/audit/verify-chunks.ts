/**
 * The fast half of whole-log verification: consumes chunks already hashed and checked by the
 * reader workers (`verify-reader.ts`), joins their subtrees onto the tree's frontier, checks
 * every signed checkpoint that falls inside them and every stored node above them. It only ever
 * says "all good" or "resume the careful verifier here": the exact verdict for a bad log (first
 * bad leaf, reason) always comes from `verifyLeaves`, started at the last good chunk.
 */
import { hashChildren, hashesEqual, type Hash } from './merkle.ts';
import { frontierRoot, nodeKey, type Frontier, type NodeId, type TreeNode } from './tree-nodes.ts';
import type { AnomalousChunk, HashedChunk } from './verify-reader.ts';

/** A signed checkpoint (already signature-checked). */
export interface TrustedRoot {
  size: number;
  root: Uint8Array;
}

/** Where the careful verifier takes over: the state after the last chunk that passed. */
export interface ResumePoint {
  frontier: Frontier;
  /** Size of the last checkpoint that matched. */
  lastGood: number;
}

export interface VerifyChunksOptions {
  /** Checkpoints sorted by size. */
  checkpoints: readonly TrustedRoot[];
  /** Reads stored nodes (levels above a chunk), returning those found by `nodeKey`. */
  getNodes: (ids: readonly NodeId[]) => Promise<Map<string, Uint8Array>>;
  onProgress?: (done: number) => void;
}

/** Appends a complete subtree of `2^level` leaves; merged parents go to `completed`. */
function appendSubtree(f: Frontier, hash: Hash, level: number, completed?: TreeNode[]): Frontier {
  const peaks = [...f.peaks];
  let carry = hash;
  let l = level;
  let index = f.size / 2 ** level;
  while (index % 2 === 1) {
    carry = hashChildren(peaks.pop() as Hash, carry);
    l++;
    index = Math.floor(index / 2);
    completed?.push({ level: l, index, hash: carry });
  }
  peaks.push(carry);
  return { size: f.size + 2 ** level, peaks };
}

/** The frontier after leaves `[chunk.start, upTo)` of a chunk, as complete subtrees. */
function extend(f: Frontier, chunk: HashedChunk, upTo: number, completed?: TreeNode[]): Frontier {
  let offset = 0;
  const n = upTo - chunk.start;
  for (let level = chunk.levels.length - 1; level >= 0; level--) {
    const width = 2 ** level;
    if (offset + width > n) continue;
    const j = offset / width;
    // A copy: the frontier must not keep the chunk's arrays alive.
    const hash = (chunk.levels[level] as Uint8Array).slice(j * 32, j * 32 + 32);
    f = appendSubtree(f, hash, level, completed);
    offset += width;
  }
  return f;
}

/**
 * Verifies hashed chunks in order. Returns the final frontier when every chunk, checkpoint and
 * stored node passed, or the point to resume the careful verifier at.
 */
export async function verifyHashedChunks(
  chunks: AsyncIterable<HashedChunk | AnomalousChunk>,
  options: VerifyChunksOptions,
): Promise<
  { ok: true; frontier: Frontier; lastGood: number } | { ok: false; resume: ResumePoint }
> {
  const cps = options.checkpoints;
  let frontier: Frontier = { size: 0, peaks: [] };
  let lastGood = 0;
  let cpAt = 0;
  while (cpAt < cps.length && (cps[cpAt] as TrustedRoot).size === 0) cpAt++;
  for await (const chunk of chunks) {
    const resume = { ok: false as const, resume: { frontier, lastGood } };
    if ('anomaly' in chunk || chunk.start !== frontier.size) return resume;
    let good = lastGood;
    let at = cpAt;
    for (let cp = cps[at]; cp && cp.size <= chunk.end; cp = cps[++at]) {
      if (!hashesEqual(frontierRoot(extend(frontier, chunk, cp.size)), cp.root)) return resume;
      good = cp.size;
    }
    const completed: TreeNode[] = [];
    const next = extend(frontier, chunk, chunk.end, completed);
    if (completed.length > 0) {
      const stored = await options.getNodes(completed);
      const wrong = completed.some(
        (n) => !hashesEqual(stored.get(nodeKey(n.level, n.index)), n.hash),
      );
      if (wrong) return resume;
    }
    frontier = next;
    lastGood = good;
    cpAt = at;
    options.onProgress?.(frontier.size);
  }
  return { ok: true, frontier, lastGood };
}
