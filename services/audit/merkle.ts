/**
 * RFC 9162 (Certificate Transparency v2) Merkle tree hashing, proof shapes and proof verifiers.
 *
 * Leaf hash `SHA-256(0x00 || data)`, interior node `SHA-256(0x01 || left || right)`, the tree
 * of `n` leaves split at the largest power of two smaller than `n` (RFC 9162 §2.1.1). Sizes and
 * indexes are JavaScript numbers (safe up to 2^53), so bit tests use arithmetic: bitwise
 * operators would truncate to 32 bits.
 *
 * @example
 * ```ts
 * const leaves = ['a', 'b', 'c'].map((s) => hashLeaf(Buffer.from(s)));
 * const root = rootFromLeafHashes(leaves);
 * const path = inclusionProofFromLeafHashes(leaves, 1);
 * verifyInclusion(leaves[1]!, 1, 3, path, root); // true
 * ```
 */
import { createHash, hash } from 'node:crypto';

export type Hash = Uint8Array;

export const HASH_SIZE = 32;

/** Root of the empty tree: SHA-256 of the empty string. */
export const EMPTY_ROOT: Hash = createHash('sha256').digest();

/**
 * One-shot SHA-256 as a Buffer. `crypto.hash` is much cheaper with a string result than with a
 * Buffer one (the Buffer is built on a slow path): take latin1 ("binary") text and copy it back.
 */
function sha256(input: Uint8Array): Buffer {
  return Buffer.from(hash('sha256', input, 'binary'), 'binary');
}

// One-shot hashing of a prefixed copy is faster than a streaming Hash object per node.
export function hashLeaf(data: Uint8Array): Hash {
  const buf = Buffer.allocUnsafe(data.length + 1);
  buf[0] = 0x00;
  buf.set(data, 1);
  return sha256(buf);
}

// Interior nodes hash 65 bytes: one scratch buffer serves every call (hashing is synchronous).
const NODE_INPUT = Buffer.alloc(1 + 2 * HASH_SIZE);

export function hashChildren(left: Uint8Array, right: Uint8Array): Hash {
  if (left.length === HASH_SIZE && right.length === HASH_SIZE) {
    NODE_INPUT[0] = 0x01;
    NODE_INPUT.set(left, 1);
    NODE_INPUT.set(right, 1 + HASH_SIZE);
    return sha256(NODE_INPUT);
  }
  const buf = Buffer.allocUnsafe(1 + left.length + right.length);
  buf[0] = 0x01;
  buf.set(left, 1);
  buf.set(right, 1 + left.length);
  return sha256(buf);
}

export function hashesEqual(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return !!a && !!b && a.length === b.length && Buffer.compare(a, b) === 0;
}

/** Largest power of two strictly smaller than `n` (`n` > 1): RFC 9162's split point `k`. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isOdd(x: number): boolean {
  return x % 2 === 1;
}

function half(x: number): number {
  return Math.floor(x / 2);
}

function isPowerOfTwo(x: number): boolean {
  if (x < 1) return false;
  while (x % 2 === 0) x /= 2;
  return x === 1;
}

function validSize(x: number): boolean {
  return Number.isSafeInteger(x) && x >= 0;
}

/** A half-open range of leaves `[start, end)` whose Merkle tree hash a proof contains. */
export type LeafRange = readonly [start: number, end: number];

/**
 * Ranges of the RFC 9162 §2.1.3.1 inclusion path of leaf `m` in the tree of size `n`, leaf to
 * root.
 */
export function inclusionRanges(m: number, n: number): LeafRange[] {
  if (!validSize(m) || !validSize(n) || m >= n) throw new RangeError('leaf index out of range');
  const ranges: LeafRange[] = [];
  let start = 0;
  let end = n;
  // Walk root to leaf, then reverse: the RFC lists the path leaf to root.
  while (end - start > 1) {
    const k = splitPoint(end - start);
    if (m - start < k) {
      ranges.push([start + k, end]);
      end = start + k;
    } else {
      ranges.push([start, start + k]);
      start += k;
    }
  }
  return ranges.reverse();
}

/**
 * Ranges of the RFC 9162 §2.1.4.1 consistency proof between sizes `m` and `n` (`m <= n`).
 * Empty when `m` is 0 or equal to `n`.
 */
export function consistencyRanges(m: number, n: number): LeafRange[] {
  if (!validSize(m) || !validSize(n) || m > n) throw new RangeError('sizes out of range');
  if (m === 0 || m === n) return [];
  const ranges: LeafRange[] = [];
  let start = 0;
  let end = n;
  let whole = true; // SUBPROOF's `b`: is the old tree the whole left part so far?
  let mm = m;
  while (mm !== end - start) {
    const k = splitPoint(end - start);
    if (mm <= k) {
      ranges.push([start + k, end]);
      end = start + k;
    } else {
      ranges.push([start, start + k]);
      mm -= k;
      start += k;
      whole = false;
    }
  }
  if (!whole) ranges.push([start, end]);
  return ranges.reverse();
}

/** Merkle tree hash of `leaves[start:end)` by the RFC 9162 recursion (reference, O(n)). */
export function rootFromLeafHashes(leaves: readonly Hash[], start = 0, end = leaves.length): Hash {
  const n = end - start;
  if (n === 0) return EMPTY_ROOT;
  if (n === 1) return leaves[start] as Hash;
  const k = splitPoint(n);
  return hashChildren(
    rootFromLeafHashes(leaves, start, start + k),
    rootFromLeafHashes(leaves, start + k, end),
  );
}

/** Inclusion proof computed from every leaf hash (reference and small logs). */
export function inclusionProofFromLeafHashes(
  leaves: readonly Hash[],
  m: number,
  n = leaves.length,
): Hash[] {
  return inclusionRanges(m, n).map(([s, e]) => rootFromLeafHashes(leaves, s, e));
}

/** Consistency proof computed from every leaf hash (reference and small logs). */
export function consistencyProofFromLeafHashes(
  leaves: readonly Hash[],
  m: number,
  n = leaves.length,
): Hash[] {
  return consistencyRanges(m, n).map(([s, e]) => rootFromLeafHashes(leaves, s, e));
}

/**
 * Verifies an inclusion proof as RFC 9162 §2.1.3.2 specifies. Never throws on hostile input:
 * any malformed argument is a failed verification.
 */
export function verifyInclusion(
  leafHash: Hash,
  leafIndex: number,
  treeSize: number,
  proof: readonly Hash[],
  root: Hash,
): boolean {
  if (!validSize(leafIndex) || !validSize(treeSize) || leafIndex >= treeSize) return false;
  if (!Array.isArray(proof) || proof.some((p) => p?.length !== HASH_SIZE)) return false;
  if (leafHash?.length !== HASH_SIZE || root?.length !== HASH_SIZE) return false;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      r = hashChildren(p, r);
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = hashChildren(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && hashesEqual(r, root);
}

/**
 * Verifies a consistency proof as RFC 9162 §2.1.4.2 specifies, plus the two degenerate cases
 * the RFC leaves to the caller: equal sizes (empty proof, equal roots) and an empty first tree
 * (empty proof, empty first root).
 */
export function verifyConsistency(
  firstSize: number,
  secondSize: number,
  firstRoot: Hash,
  secondRoot: Hash,
  proof: readonly Hash[],
): boolean {
  if (!validSize(firstSize) || !validSize(secondSize) || firstSize > secondSize) return false;
  if (!Array.isArray(proof) || proof.some((p) => p?.length !== HASH_SIZE)) return false;
  if (firstRoot?.length !== HASH_SIZE || secondRoot?.length !== HASH_SIZE) return false;
  if (firstSize === secondSize) return proof.length === 0 && hashesEqual(firstRoot, secondRoot);
  if (firstSize === 0) return proof.length === 0 && hashesEqual(firstRoot, EMPTY_ROOT);
  if (proof.length === 0) return false;
  const path = isPowerOfTwo(firstSize) ? [firstRoot, ...proof] : [...proof];
  let fn = firstSize - 1;
  let sn = secondSize - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0] as Hash;
  let sr = path[0] as Hash;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      fr = hashChildren(c, fr);
      sr = hashChildren(c, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = hashChildren(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && hashesEqual(fr, firstRoot) && hashesEqual(sr, secondRoot);
}
