/**
 * Whole-log verification: re-hash every leaf in order, check each against its stored leaf
 * hash, rebuild the tree and compare it with every signed checkpoint and with the stored tree
 * nodes. Works on a live store, a store opened offline, or an export; names the first bad leaf.
 */
import { hash as sha } from 'node:crypto';
import { hashesEqual, hashLeaf, type Hash } from './merkle.ts';
import { openCheckpoint, type NoteVerifier } from './note.ts';
import {
  type NodeId,
  type TreeNode,
  appendToFrontier,
  EMPTY_FRONTIER,
  frontierRoot,
  hashRange,
  nodeKey,
  rangeNodes,
  type Frontier,
} from './tree-nodes.ts';
import type { AuditStore, StoredLeaf } from './store/types.ts';
import { readPackedChunks, type PackedChunk, type PackedLevel } from './verify-reader.ts';

export interface VerifyResult {
  ok: boolean;
  treeSize: number;
  root: Hash;
  firstBadLeaf?: number;
  reason?: string;
}

export interface TrustedCheckpoint {
  size: number;
  root: Uint8Array;
}

export interface VerifyLeavesOptions {
  /** Leaves the log claims to hold. */
  size: number;
  /** Signed (already signature-checked) checkpoints to compare prefixes against. */
  checkpoints: readonly TrustedCheckpoint[];
  /**
   * Compares interior nodes rebuilt from the leaves with stored ones; returns the first that
   * differs (or is missing).
   */
  checkNodes?: (nodes: readonly TreeNode[]) => Promise<NodeId | undefined>;
  /** Called after each chunk with the leaves done so far. */
  onProgress?: (done: number) => void;
}

/** Position of `index` in a packed level at or after `from`, or -1 (`cursor` holds `from`). */
function seek(level: PackedLevel, index: number, cursor: number[]): number {
  const idx = level.indexes;
  let c = cursor[level.level] ?? 0;
  while (c < idx.length && (idx[c] as number) < index) c++;
  cursor[level.level] = c;
  return c < idx.length && idx[c] === index ? c : -1;
}

/** Whether a packed stored hash equals `h`. */
function packedEquals(level: PackedLevel, pos: number, h: Uint8Array): boolean {
  if (level.malformed[pos] === 1) return false;
  const base = pos * 32;
  const stored = level.hashes;
  for (let k = 0; k < 32; k++) if (stored[base + k] !== h[k]) return false;
  return true;
}

/**
 * Verifies leaves streamed in ascending chunks: arrays of stored leaves, or packed chunks
 * (see `verify-reader.ts`) that carry the stored nodes they complete, compared here.
 */
export async function verifyLeaves(
  chunks: AsyncIterable<StoredLeaf[] | PackedChunk>,
  options: VerifyLeavesOptions,
): Promise<VerifyResult & { frontier: Frontier }> {
  const cps = [...options.checkpoints].sort((a, b) => a.size - b.size);
  let frontier: Frontier = EMPTY_FRONTIER;
  let next = 0;
  let cpAt = 0;
  let lastGood = 0;
  const fail = (firstBadLeaf: number | undefined, reason: string) => ({
    ok: false,
    treeSize: frontier.size,
    root: frontierRoot(frontier),
    ...(firstBadLeaf === undefined ? {} : { firstBadLeaf }),
    reason,
    frontier,
  });
  const wrongNode = (wrong: NodeId) => {
    const width = 2 ** wrong.level;
    return fail(
      wrong.index * width,
      `stored tree node ${wrong.level}:${wrong.index} (leaves ${wrong.index * width}..${(wrong.index + 1) * width - 1}) does not match the leaves`,
    );
  };
  // The packed chunk being verified: its stored nodes, and a read cursor per level.
  let packed: PackedChunk | undefined;
  let cursor: number[] = [];
  let byLevel: Array<PackedLevel | undefined> = [];
  const checkPacked = (nodes: readonly TreeNode[]): NodeId | undefined => {
    for (const n of nodes) {
      if (n.level === 0) continue;
      const level = byLevel[n.level];
      const pos = level ? seek(level, n.index, cursor) : -1;
      if (pos < 0 || !packedEquals(level as PackedLevel, pos, n.hash)) return n;
    }
    return undefined;
  };
  const grow = async (hashes: Hash[]) => {
    const step = appendToFrontier(frontier, hashes);
    frontier = step.frontier;
    const wrong = packed
      ? checkPacked(step.nodes)
      : options.checkNodes
        ? await options.checkNodes(step.nodes)
        : undefined;
    return wrong ? wrongNode(wrong) : undefined;
  };
  // Checkpoints of size 0 are trivially consistent; skip them.
  while (cpAt < cps.length && (cps[cpAt] as TrustedCheckpoint).size === 0) cpAt++;
  for await (const chunk of chunks) {
    const hashes: Hash[] = [];
    const isArray = Array.isArray(chunk);
    packed = isArray ? undefined : chunk;
    cursor = [];
    byLevel = [];
    if (packed) for (const l of packed.levels) byLevel[l.level] = l;
    const count = isArray ? chunk.length : chunk.indexes.length;
    const level0 = packed?.levels[0]?.level === 0 ? packed.levels[0] : undefined;
    const bytes = packed
      ? Buffer.from(packed.data.buffer, packed.data.byteOffset, packed.data.byteLength)
      : undefined;
    for (let i = 0; i < count; i++) {
      const index = isArray ? (chunk[i] as StoredLeaf).index : (packed as PackedChunk).indexes[i];
      if (index !== next) {
        return fail(
          next,
          (index as number) > next ? `leaf ${next} is missing` : `leaf ${index} is out of order`,
        );
      }
      if (next >= options.size)
        return fail(next, `leaf ${next} lies beyond the tree size ${options.size}`);
      let h: Hash;
      let matches: boolean;
      if (isArray) {
        const leaf = chunk[i] as StoredLeaf;
        h = hashLeaf(leaf.data);
        matches = leaf.hash === undefined || hashesEqual(h, leaf.hash);
      } else {
        // Packed leaves sit behind their 0x00 prefix: hash in place, no copy.
        const offsets = (packed as PackedChunk).offsets;
        h = sha(
          'sha256',
          (bytes as Buffer).subarray(offsets[i] as number, offsets[i + 1] as number),
          'buffer',
        );
        const pos = level0 ? seek(level0, next, cursor) : -1;
        matches = pos < 0 || packedEquals(level0 as PackedLevel, pos, h);
      }
      if (!matches) return fail(next, `leaf ${next} does not match its stored hash`);
      hashes.push(h);
      next++;
      if (cps[cpAt]?.size === next) {
        // Bring the frontier to exactly this checkpoint's size.
        const bad = await grow(hashes.splice(0));
        if (bad) return bad;
        const root = frontierRoot(frontier);
        // Several notes may exist for one size (the store's and a trusted one): check all.
        for (let cp = cps[cpAt]; cp?.size === next; cp = cps[++cpAt]) {
          if (!hashesEqual(root, cp.root)) {
            return fail(
              lastGood,
              `leaves ${lastGood}..${cp.size - 1} do not match the signed checkpoint of size ${cp.size}`,
            );
          }
        }
        lastGood = next;
      }
    }
    const bad = await grow(hashes);
    if (bad) return bad;
    options.onProgress?.(next);
  }
  if (next < options.size) return fail(next, `leaf ${next} is missing`);
  const pending = cps[cpAt];
  if (pending)
    return fail(next, `the log has ${next} leaves but a signed checkpoint has ${pending.size}`);
  return { ok: true, treeSize: frontier.size, root: frontierRoot(frontier), frontier };
}

export interface VerifyStoreOptions {
  verifier: NoteVerifier;
  origin: string;
  /** An extra checkpoint note the caller trusts (for example from `--checkpoint FILE`). */
  trustedCheckpoint?: string;
  /** Leaves per read. Default 10,000 (50,000 on the parallel SQLite reader). */
  chunkSize?: number;
  /**
   * Read a SQLite store on a worker thread while this thread hashes (when the store has a file
   * path). Default: try it for logs of 100,000 leaves or more, and verify on this thread if the
   * worker cannot start; `true` insists (a reader failure is an error), `false` never uses it.
   */
  parallel?: boolean;
  /**
   * Also refuse rows past the recorded size. Default true; a live log passes false because
   * appends may land while it verifies.
   */
  checkExtraRows?: boolean;
  onProgress?: (done: number, total: number) => void;
}

const PARALLEL_MIN_LEAVES = 100_000;

async function* readChunks(
  store: AuditStore,
  size: number,
  chunkSize: number,
  extra: boolean,
): AsyncIterable<StoredLeaf[]> {
  // Read one past the end, when asked, so extra rows beyond the recorded size are noticed.
  const end = extra ? size + 1 : size;
  for (let start = 0; start < end; start += chunkSize) {
    const chunk = await store.readLeaves(start, Math.min(start + chunkSize, end));
    if (chunk.length > 0) yield chunk;
  }
}

/** Verifies a whole store: leaves, stored nodes, and every signed checkpoint in it. */
export async function verifyStore(
  store: AuditStore,
  options: VerifyStoreOptions,
): Promise<VerifyResult> {
  // Checkpoints before the size: a checkpoint signed meanwhile is never past the size read.
  const stored = await store.listCheckpoints();
  const size = await store.size();
  const checkpoints: TrustedCheckpoint[] = [];
  const notes = stored.map((c) => ({
    note: c.note,
    where: `stored checkpoint of size ${c.size}`,
  }));
  if (options.trustedCheckpoint)
    notes.push({ note: options.trustedCheckpoint, where: 'the given checkpoint' });
  for (const { note, where } of notes) {
    try {
      checkpoints.push(openCheckpoint(note, options.verifier, options.origin));
    } catch (err) {
      return {
        ok: false,
        treeSize: 0,
        root: frontierRoot(EMPTY_FRONTIER),
        reason: `${where} does not verify: ${(err as Error).message}`,
      };
    }
  }
  const extra = options.checkExtraRows ?? true;
  const leafOptions: VerifyLeavesOptions = {
    size,
    checkpoints,
    onProgress: (done) => options.onProgress?.(done, size),
  };
  let result: (VerifyResult & { frontier: Frontier }) | undefined;
  // Starting a worker costs tens of ms: worth it only for a big log, unless asked for.
  const parallel =
    options.parallel === true || (options.parallel === undefined && size >= PARALLEL_MIN_LEAVES);
  if (store.path && parallel) {
    let started = false;
    const packed = readPackedChunks({
      path: store.path,
      // Read one past the end, when asked, so extra rows beyond the recorded size are noticed.
      end: extra ? size + 1 : size,
      chunkSize: options.chunkSize ?? 50_000,
    });
    async function* tracked() {
      for await (const chunk of packed) {
        started = true;
        yield chunk;
      }
    }
    try {
      result = await verifyLeaves(tracked(), leafOptions);
    } catch (err) {
      // A reader that could not start (no worker threads here): verify on this thread.
      if (started || options.parallel === true) throw err;
    }
  }
  result ??= await verifyLeaves(readChunks(store, size, options.chunkSize ?? 10_000, extra), {
    ...leafOptions,
    checkNodes: async (nodes) => {
      // One range read per level: the nodes a chunk completes are contiguous per level.
      const byLevel = new Map<number, TreeNode[]>();
      for (const n of nodes) {
        if (n.level === 0) continue;
        let list = byLevel.get(n.level);
        if (!list) byLevel.set(n.level, (list = []));
        list.push(n);
      }
      for (const [level, list] of byLevel) {
        const first = (list[0] as TreeNode).index;
        const stored = await store.readNodeRange(
          level,
          first,
          (list[list.length - 1] as TreeNode).index + 1,
        );
        const wrong = list.find((n) => !hashesEqual(stored.get(n.index), n.hash));
        if (wrong) return wrong;
      }
      return undefined;
    },
  });
  if (!result.ok) return strip(result);
  // The stored nodes proofs are built from must agree with the leaves too.
  const ids = rangeNodes(0, size);
  const nodes = await store.getNodes(ids);
  let nodesOk = ids.every((id) => nodes.has(nodeKey(id.level, id.index)));
  if (nodesOk) {
    const storedRoot = hashRange(0, size, (l, i) => nodes.get(nodeKey(l, i)));
    nodesOk = hashesEqual(storedRoot, result.root);
  }
  if (!nodesOk)
    return { ...strip(result), ok: false, reason: 'stored tree nodes do not match the leaves' };
  return strip(result);
}

function strip(r: VerifyResult & { frontier?: Frontier }): VerifyResult {
  return {
    ok: r.ok,
    treeSize: r.treeSize,
    root: r.root,
    ...(r.firstBadLeaf !== undefined ? { firstBadLeaf: r.firstBadLeaf } : {}),
    ...(r.reason !== undefined ? { reason: r.reason } : {}),
  };
}
