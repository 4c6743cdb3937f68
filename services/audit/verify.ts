/**
 * Whole-log verification: re-hash every leaf in order, check each against its stored leaf
 * hash, rebuild the tree and compare it with every signed checkpoint and with the stored tree
 * nodes. Works on a live store, a store opened offline, or an export; names the first bad leaf.
 */
import { availableParallelism } from 'node:os';
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
import { verifyHashedChunks, type ResumePoint } from './verify-chunks.ts';
import { readHashedChunks } from './verify-reader.ts';

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
  /**
   * Continue from a state already verified (the chunks must then start at `frontier.size`);
   * checkpoints up to that size count as checked.
   */
  resume?: ResumePoint;
}

/** Verifies leaves streamed in ascending chunks of stored leaves. */
export async function verifyLeaves(
  chunks: AsyncIterable<StoredLeaf[]>,
  options: VerifyLeavesOptions,
): Promise<VerifyResult & { frontier: Frontier }> {
  const cps = [...options.checkpoints].sort((a, b) => a.size - b.size);
  let frontier: Frontier = options.resume?.frontier ?? EMPTY_FRONTIER;
  let next = frontier.size;
  let cpAt = 0;
  let lastGood = options.resume?.lastGood ?? 0;
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
  const grow = async (hashes: Hash[]) => {
    const step = appendToFrontier(frontier, hashes);
    frontier = step.frontier;
    const wrong = options.checkNodes ? await options.checkNodes(step.nodes) : undefined;
    return wrong ? wrongNode(wrong) : undefined;
  };
  // Checkpoints of size 0 are trivially consistent, and those up to a resumed state were checked.
  while (cpAt < cps.length && (cps[cpAt] as TrustedCheckpoint).size <= next) cpAt++;
  for await (const chunk of chunks) {
    const hashes: Hash[] = [];
    for (const leaf of chunk) {
      const index = leaf.index;
      if (index !== next) {
        return fail(
          next,
          (index as number) > next ? `leaf ${next} is missing` : `leaf ${index} is out of order`,
        );
      }
      if (next >= options.size)
        return fail(next, `leaf ${next} lies beyond the tree size ${options.size}`);
      const h = hashLeaf(leaf.data);
      if (leaf.hash !== undefined && !hashesEqual(h, leaf.hash))
        return fail(next, `leaf ${next} does not match its stored hash`);
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
  /**
   * Leaves per read. Default 10,000 (32,768 on the parallel SQLite reader, which rounds it down
   * to a power of two).
   */
  chunkSize?: number;
  /**
   * A SQLite store (one with a file path) is read and hashed in whole aligned chunks, checked
   * against its stored nodes at once; any chunk not exactly as expected is verified again leaf
   * by leaf, so the verdict is the same either way. `parallel` spreads the chunks over this
   * thread and worker threads. Default: a worker for logs of 200,000 leaves or more, and this
   * thread alone if none can start; `true` insists (a worker failure is an error); `false`
   * verifies leaf by leaf only, on this thread.
   */
  parallel?: boolean;
  /** Worker threads besides this one. Default when parallel: available cores - 1, at most 1; else 0. */
  workers?: number;
  /**
   * Also refuse rows past the recorded size. Default true; a live log passes false because
   * appends may land while it verifies.
   */
  checkExtraRows?: boolean;
  onProgress?: (done: number, total: number) => void;
}

// A worker costs ~0.1 s of CPU to start (module loading): below this it does not pay off.
const PARALLEL_MIN_LEAVES = 200_000;

async function* readChunks(
  store: AuditStore,
  from: number,
  size: number,
  chunkSize: number,
  extra: boolean,
): AsyncIterable<StoredLeaf[]> {
  // Read one past the end, when asked, so extra rows beyond the recorded size are noticed.
  const end = extra ? size + 1 : size;
  for (let start = from; start < end; start += chunkSize) {
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
  // Starting a worker costs tens of ms: worth it only for a big log, unless asked for.
  const parallel =
    options.parallel === true || (options.parallel === undefined && size >= PARALLEL_MIN_LEAVES);
  let resume: ResumePoint | undefined;
  if (store.path && options.parallel !== false && size > 0) {
    const chunks = readHashedChunks({
      path: store.path,
      end: size,
      chunkSize: 2 ** Math.floor(Math.log2(Math.max(1, options.chunkSize ?? 32_768))),
      workers: options.workers ?? (parallel ? Math.min(2, availableParallelism()) - 1 : 0),
    });
    try {
      const fast = await verifyHashedChunks(chunks, {
        checkpoints: [...checkpoints].sort((x, y) => x.size - y.size),
        getNodes: (ids) => store.getNodes(ids),
        onProgress: (done) => options.onProgress?.(done, size),
      });
      resume = fast.ok ? { frontier: fast.frontier, lastGood: fast.lastGood } : fast.resume;
    } catch (err) {
      // A reader that failed (no worker threads here, say): verify the careful way instead.
      if (options.parallel === true) throw err;
      resume = undefined;
    }
  }
  // The careful verifier: the whole log, or what follows the last chunk the workers passed
  // (nothing but the end checks when they passed all).
  const from = resume?.frontier.size ?? 0;
  const result = await verifyLeaves(
    readChunks(store, from, size, options.chunkSize ?? 10_000, extra),
    {
      ...leafOptions,
      ...(resume ? { resume } : {}),
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
    },
  );
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
