import { createHash } from 'node:crypto';
import {
  appendToFrontier,
  frontierRoot,
  hashRange,
  nodeKey,
  EMPTY_FRONTIER,
} from './tree-nodes.ts';
import {
  consistencyRanges,
  inclusionRanges,
  EMPTY_ROOT,
  consistencyProofFromLeafHashes,
  hashChildren,
  hashLeaf,
  inclusionProofFromLeafHashes,
  rootFromLeafHashes,
  splitPoint,
  verifyConsistency,
  verifyInclusion,
  type Hash,
} from './merkle.ts';

const hex = (h: Uint8Array) => Buffer.from(h).toString('hex');
const unhex = (s: string) => Buffer.from(s, 'hex');

// Certificate Transparency reference data (RFC 6962 test vectors, as published with the CT
// reference implementations): leaves, then the root for sizes 1..8.
const CT_LEAVES = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map((d) => hashLeaf(unhex(d)));
const CT_ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const CT_INCLUSION = [
  {
    index: 0,
    size: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    index: 5,
    size: 8,
    proof: [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
];
const CT_CONSISTENCY = [
  {
    first: 2,
    second: 8,
    proof: [
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    first: 6,
    second: 8,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
];

/**
 * The RFC 9162 definitions written as literally as possible over `leaves[start:end)`, for
 * brute-force comparison. MTH is memoised so the exhaustive loops stay fast.
 */
const memo = new Map<string, Hash>();
function mth(start: number, end: number): Hash {
  const key = `${start}:${end}`;
  let h = memo.get(key);
  if (!h) {
    const n = end - start;
    if (n === 0) h = EMPTY_ROOT;
    else if (n === 1) h = leaves[start] as Hash;
    else {
      const k = splitPoint(n);
      h = hashChildren(mth(start, start + k), mth(start + k, end));
    }
    memo.set(key, h);
  }
  return h;
}
function path(m: number, start: number, end: number): Hash[] {
  if (end - start === 1) return [];
  const k = splitPoint(end - start);
  return m < k
    ? [...path(m, start, start + k), mth(start + k, end)]
    : [...path(m - k, start + k, end), mth(start, start + k)];
}
function subproof(m: number, start: number, end: number, b: boolean): Hash[] {
  if (m === end - start) return b ? [] : [mth(start, end)];
  const k = splitPoint(end - start);
  return m <= k
    ? [...subproof(m, start, start + k, b), mth(start + k, end)]
    : [...subproof(m - k, start + k, end, false), mth(start, start + k)];
}

const MAX = 130; // every size up to 130 for the exhaustive pairs (n^2 proofs)
const leaves = Array.from({ length: 300 }, (_, i) => hashLeaf(Buffer.from(`leaf ${i}`)));
const roots = Array.from({ length: leaves.length + 1 }, (_, n) => mth(0, n));

// The stored-node path the service uses: every complete subtree hash, looked up by position.
const table = new Map<string, Hash>();
for (const node of appendToFrontier(EMPTY_FRONTIER, leaves).nodes) {
  table.set(nodeKey(node.level, node.index), node.hash);
}
const lookup = (level: number, index: number) => table.get(nodeKey(level, index));
const nodeInclusion = (m: number, n: number) =>
  inclusionRanges(m, n).map(([s, e]) => hashRange(s, e, lookup));
const nodeConsistency = (m: number, n: number) =>
  consistencyRanges(m, n).map(([s, e]) => hashRange(s, e, lookup));

function flip(h: Hash, byte = 0): Hash {
  const copy = Buffer.from(h);
  copy[byte] = (copy[byte] as number) ^ 0x01;
  return copy;
}

describe('RFC 9162 hashing', () => {
  it('uses the 0x00 leaf and 0x01 node prefixes over SHA-256', () => {
    const sha = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();
    expect(hex(hashLeaf(Buffer.from('x')))).toBe(hex(sha(Buffer.from([0]), Buffer.from('x'))));
    const [l, r] = [hashLeaf(Buffer.from('l')), hashLeaf(Buffer.from('r'))];
    expect(hex(hashChildren(l, r))).toBe(
      hex(sha(Buffer.from([1]), Buffer.from(l), Buffer.from(r))),
    );
    expect(hex(EMPTY_ROOT)).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
  });

  it('matches the published roots for sizes 0..8', () => {
    expect(hex(rootFromLeafHashes([]))).toBe(hex(EMPTY_ROOT));
    for (let n = 1; n <= 8; n++)
      expect(hex(rootFromLeafHashes(CT_LEAVES.slice(0, n)))).toBe(CT_ROOTS[n - 1]);
  });

  it('splits at the largest power of two below n', () => {
    expect([2, 3, 4, 5, 8, 9, 1000].map(splitPoint)).toEqual([1, 2, 2, 4, 4, 8, 512]);
    expect(splitPoint(2 ** 40 + 1)).toBe(2 ** 40);
  });

  it('agrees with the literal recursion for every size up to 300, also from stored nodes', () => {
    let frontier = EMPTY_FRONTIER;
    for (let n = 0; n <= leaves.length; n++) {
      if (n <= 64) expect(hex(rootFromLeafHashes(leaves, 0, n))).toBe(hex(roots[n] as Hash));
      expect(hex(hashRange(0, n, lookup))).toBe(hex(roots[n] as Hash));
      expect(hex(frontierRoot(frontier))).toBe(hex(roots[n] as Hash));
      if (n < leaves.length) frontier = appendToFrontier(frontier, [leaves[n] as Hash]).frontier;
    }
  });

  it('the reference proof builders agree with the stored-node ones', () => {
    for (let n = 1; n <= 40; n++) {
      for (let m = 0; m < n; m++) {
        expect(inclusionProofFromLeafHashes(leaves, m, n).map(hex)).toEqual(
          nodeInclusion(m, n).map(hex),
        );
        expect(consistencyProofFromLeafHashes(leaves, m, n).map(hex)).toEqual(
          nodeConsistency(m, n).map(hex),
        );
      }
    }
  });

  it('appending in batches yields the same nodes as one at a time', () => {
    const one = appendToFrontier(EMPTY_FRONTIER, leaves.slice(0, 77));
    let f = EMPTY_FRONTIER;
    const nodes = [];
    for (const chunk of [3, 1, 20, 8, 45]) {
      const r = appendToFrontier(f, leaves.slice(f.size, f.size + chunk));
      nodes.push(...r.nodes);
      f = r.frontier;
    }
    expect(f.size).toBe(77);
    expect(nodes.map((x) => [x.level, x.index, hex(x.hash)])).toEqual(
      one.nodes.map((x) => [x.level, x.index, hex(x.hash)]),
    );
  });
});

describe('inclusion proofs', () => {
  it('reproduces and verifies the published vectors', () => {
    for (const v of CT_INCLUSION) {
      expect(inclusionProofFromLeafHashes(CT_LEAVES, v.index, v.size).map(hex)).toEqual(v.proof);
      const root = unhex(CT_ROOTS[v.size - 1] as string);
      expect(
        verifyInclusion(CT_LEAVES[v.index] as Hash, v.index, v.size, v.proof.map(unhex), root),
      ).toBe(true);
    }
  });

  it('every leaf of every size up to 300 proves, equal to the literal PATH', () => {
    const bad: string[] = [];
    for (let n = 1; n <= leaves.length; n++) {
      for (let m = 0; m < n; m++) {
        const proof = nodeInclusion(m, n);
        if (proof.map(hex).join() !== path(m, 0, n).map(hex).join()) bad.push(`path ${m}/${n}`);
        if (!verifyInclusion(leaves[m] as Hash, m, n, proof, roots[n] as Hash))
          bad.push(`${m}/${n}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('refuses tampered, truncated, extended, misplaced and malformed proofs', () => {
    for (let n = 1; n <= 80; n++) {
      const root = roots[n] as Hash;
      for (let m = 0; m < n; m++) {
        const proof = nodeInclusion(m, n);
        const leaf = leaves[m] as Hash;
        expect(verifyInclusion(flip(leaf), m, n, proof, root)).toBe(false);
        expect(verifyInclusion(leaf, m, n, proof, flip(root, 31))).toBe(false);
        expect(verifyInclusion(leaf, m, n, [...proof, leaf], root)).toBe(false);
        expect(verifyInclusion(leaf, n, n, proof, root)).toBe(false);
        for (let i = 0; i < proof.length; i++) {
          const bad = [...proof];
          bad[i] = flip(bad[i] as Hash, i % 32);
          expect(verifyInclusion(leaf, m, n, bad, root)).toBe(false);
        }
        if (proof.length > 0)
          expect(verifyInclusion(leaf, m, n, proof.slice(0, -1), root)).toBe(false);
        if (proof.length > 1) {
          const swapped = [proof[1] as Hash, proof[0] as Hash, ...proof.slice(2)];
          expect(verifyInclusion(leaf, m, n, swapped, root)).toBe(false);
        }
      }
    }
    const root = roots[8] as Hash;
    expect(verifyInclusion(leaves[0] as Hash, -1, 8, [], root)).toBe(false);
    expect(verifyInclusion(leaves[0] as Hash, 0.5, 8, [], root)).toBe(false);
    expect(verifyInclusion(Buffer.alloc(31), 0, 1, [], root)).toBe(false);
    expect(verifyInclusion(leaves[0] as Hash, 0, 2, [Buffer.alloc(31)], root)).toBe(false);
  });
});

describe('consistency proofs', () => {
  it('reproduces and verifies the published vectors', () => {
    for (const v of CT_CONSISTENCY) {
      expect(consistencyProofFromLeafHashes(CT_LEAVES, v.first, v.second).map(hex)).toEqual(
        v.proof,
      );
      const r1 = unhex(CT_ROOTS[v.first - 1] as string);
      const r2 = unhex(CT_ROOTS[v.second - 1] as string);
      expect(verifyConsistency(v.first, v.second, r1, r2, v.proof.map(unhex))).toBe(true);
    }
  });

  it('every pair of sizes up to 130 proves, equal to the literal SUBPROOF', () => {
    for (let n = 0; n <= MAX; n++) {
      for (let m = 0; m <= n; m++) {
        const proof = nodeConsistency(m, n);
        const literal = m === 0 ? [] : subproof(m, 0, n, true);
        expect(proof.map(hex)).toEqual(literal.map(hex));
        expect(verifyConsistency(m, n, roots[m] as Hash, roots[n] as Hash, proof)).toBe(true);
      }
    }
  });

  it('sizes up to 300 against a few earlier sizes, including non-powers of two', () => {
    for (let n = MAX; n <= leaves.length; n += 7) {
      for (const m of [1, 3, 64, 100, 127, n - 1]) {
        const proof = nodeConsistency(m, n);
        expect(verifyConsistency(m, n, roots[m] as Hash, roots[n] as Hash, proof)).toBe(true);
      }
    }
  });

  it('refuses tampered, truncated, extended, wrong-root and wrong-size proofs', () => {
    for (let n = 2; n <= 70; n++) {
      for (let m = 1; m < n; m++) {
        const proof = nodeConsistency(m, n);
        const [r1, r2] = [roots[m] as Hash, roots[n] as Hash];
        expect(verifyConsistency(m, n, flip(r1), r2, proof)).toBe(false);
        expect(verifyConsistency(m, n, r1, flip(r2), proof)).toBe(false);
        expect(verifyConsistency(m, n, r1, r2, [])).toBe(false);
        expect(verifyConsistency(m, n, r1, r2, proof.slice(0, -1))).toBe(false);
        expect(verifyConsistency(m, n, r1, r2, [...proof, r1])).toBe(false);
        expect(verifyConsistency(n, m, r2, r1, proof)).toBe(false);
        for (let i = 0; i < proof.length; i++) {
          const bad = [...proof];
          bad[i] = flip(bad[i] as Hash, 7);
          expect(verifyConsistency(m, n, r1, r2, bad)).toBe(false);
        }
      }
    }
  });

  it('handles the degenerate sizes strictly', () => {
    const [r4, r5] = [roots[4] as Hash, roots[5] as Hash];
    expect(verifyConsistency(4, 4, r4, r4, [])).toBe(true);
    expect(verifyConsistency(4, 4, r4, r5, [])).toBe(false);
    expect(verifyConsistency(4, 4, r4, r4, [r4])).toBe(false);
    expect(verifyConsistency(0, 5, EMPTY_ROOT, r5, [])).toBe(true);
    expect(verifyConsistency(0, 5, r4, r5, [])).toBe(false);
    expect(verifyConsistency(0, 5, EMPTY_ROOT, r5, [r4])).toBe(false);
    expect(verifyConsistency(1, 5, roots[1] as Hash, r5, [Buffer.alloc(31)])).toBe(false);
  });
});
