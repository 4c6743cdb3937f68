/**
 * The stored shape of the tree: the hash of every complete, aligned subtree, addressed by
 * `(level, index)` where the node covers leaves `[index * 2^level, (index + 1) * 2^level)`.
 * Level 0 holds the leaf hashes. Every range a proof or root needs splits into at most
 * log2(n) such nodes, so proofs and historical roots cost O(log n) reads at any size.
 */
import { EMPTY_ROOT, hashChildren, type Hash, type LeafRange } from './merkle.ts';

export interface NodeId {
  level: number;
  index: number;
}

export interface TreeNode extends NodeId {
  hash: Hash;
}

export function nodeKey(level: number, index: number): string {
  return `${level}:${index}`;
}

/**
 * Complete subtrees that make up `[start, end)`, left to right. Valid for the ranges RFC 9162
 * proofs use, whose start is aligned to the next power of two at or above their length.
 */
export function rangeNodes(start: number, end: number): NodeId[] {
  const nodes: NodeId[] = [];
  let at = start;
  let remaining = end - start;
  let size = 1;
  let level = 0;
  while (size * 2 <= remaining) {
    size *= 2;
    level++;
  }
  while (remaining > 0) {
    if (size <= remaining) {
      nodes.push({ level, index: Math.floor(at / size) });
      at += size;
      remaining -= size;
    }
    size /= 2;
    level--;
  }
  return nodes;
}

/** Every node needed to hash all the given ranges, without duplicates. */
export function nodesForRanges(ranges: readonly LeafRange[]): NodeId[] {
  const seen = new Map<string, NodeId>();
  for (const [s, e] of ranges) {
    for (const node of rangeNodes(s, e)) seen.set(nodeKey(node.level, node.index), node);
  }
  return [...seen.values()];
}

/** Hash of `[start, end)` from its complete subtrees (right to left fold, as RFC 9162 splits). */
export function hashRange(
  start: number,
  end: number,
  lookup: (level: number, index: number) => Hash | undefined,
): Hash {
  if (end === start) return EMPTY_ROOT;
  const parts = rangeNodes(start, end).map(({ level, index }) => {
    const hash = lookup(level, index);
    if (!hash) throw new Error(`tree node ${nodeKey(level, index)} is missing`);
    return hash;
  });
  let acc = parts[parts.length - 1] as Hash;
  for (let i = parts.length - 2; i >= 0; i--) acc = hashChildren(parts[i] as Hash, acc);
  return acc;
}

/** The right edge of a tree: the complete subtrees of `[0, size)`, left to right. */
export interface Frontier {
  size: number;
  peaks: Hash[];
}

export const EMPTY_FRONTIER: Frontier = { size: 0, peaks: [] };

/**
 * Appends leaf hashes to a frontier, returning the new frontier and every node completed on
 * the way (leaves included) for the store. The input frontier is not modified, so a failed
 * commit leaves the in-memory state untouched.
 */
export function appendToFrontier(
  frontier: Frontier,
  leafHashes: readonly Hash[],
): { frontier: Frontier; nodes: TreeNode[] } {
  const peaks = [...frontier.peaks];
  const nodes: TreeNode[] = [];
  let size = frontier.size;
  for (const leaf of leafHashes) {
    let carry = leaf;
    let level = 0;
    let index = size;
    nodes.push({ level, index, hash: carry });
    // An odd index at a level means a left sibling waits on the frontier: merge upwards.
    while (index % 2 === 1) {
      const left = peaks.pop() as Hash;
      carry = hashChildren(left, carry);
      level++;
      index = Math.floor(index / 2);
      nodes.push({ level, index, hash: carry });
    }
    peaks.push(carry);
    size++;
  }
  return { frontier: { size, peaks }, nodes };
}

export function frontierRoot(frontier: Frontier): Hash {
  if (frontier.peaks.length === 0) return EMPTY_ROOT;
  let acc = frontier.peaks[frontier.peaks.length - 1] as Hash;
  for (let i = frontier.peaks.length - 2; i >= 0; i--) {
    acc = hashChildren(frontier.peaks[i] as Hash, acc);
  }
  return acc;
}
