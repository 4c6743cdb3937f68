import { createGroupCommitter } from './group-commit.ts';

describe('group commit', () => {
  it('shares commits between concurrent submissions and answers each with its own results', async () => {
    const batches: number[][] = [];
    const gc = createGroupCommitter<number, string>({
      maxBatch: 64,
      commit: async (items) => {
        batches.push(items);
        return items.map((i) => `r${i}`);
      },
    });
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => gc.submit([i])));
    expect(results.map((r) => r[0])).toEqual(Array.from({ length: 200 }, (_, i) => `r${i}`));
    expect(batches.length).toBeLessThanOrEqual(10);
    expect(Math.max(...batches.map((b) => b.length))).toBeLessThanOrEqual(64);
    expect(batches.flat()).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });

  it('never splits a submission, and one larger than maxBatch commits alone', async () => {
    const batches: number[][] = [];
    const gc = createGroupCommitter<number, number>({
      maxBatch: 4,
      commit: async (items) => {
        batches.push(items);
        return items;
      },
    });
    const [a, b, c] = await Promise.all([
      gc.submit([1, 2, 3]),
      gc.submit([4, 5]),
      gc.submit([6, 7, 8, 9, 10]),
    ]);
    expect([a, b, c]).toEqual([
      [1, 2, 3],
      [4, 5],
      [6, 7, 8, 9, 10],
    ]);
    expect(batches).toEqual([
      [1, 2, 3],
      [4, 5],
      [6, 7, 8, 9, 10],
    ]);
  });

  it('rejects only the batch whose commit failed, then keeps committing', async () => {
    let fail = true;
    const gc = createGroupCommitter<number, number>({
      maxBatch: 100,
      commit: async (items) => {
        if (fail) {
          fail = false;
          throw new Error('disk full');
        }
        return items;
      },
    });
    const first = await Promise.allSettled([gc.submit([1]), gc.submit([2])]);
    expect(first.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(await gc.submit([3])).toEqual([3]);
  });

  it('drain commits what is queued without waiting for the next turn', async () => {
    const committed: number[] = [];
    const gc = createGroupCommitter<number, number>({
      maxBatch: 100,
      commit: async (items) => {
        committed.push(...items);
        return items;
      },
    });
    const pending = gc.submit([7]);
    await gc.drain();
    expect(committed).toEqual([7]);
    await expect(pending).resolves.toEqual([7]);
  });

  it('commits a lone submission on the next turn, with no timer', async () => {
    const realSetTimeout = globalThis.setTimeout;
    let timers = 0;
    globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
      timers++;
      return realSetTimeout(...args);
    }) as typeof setTimeout;
    try {
      const gc = createGroupCommitter<number, number>({ maxBatch: 100, commit: async (i) => i });
      await expect(gc.submit([1])).resolves.toEqual([1]);
    } finally {
      globalThis.setTimeout = realSetTimeout;
    }
    expect(timers).toBe(0);
  });

  it('gathers submissions made during a commit into the next one, committed right after', async () => {
    const batches: number[][] = [];
    let release: (() => void) | undefined;
    const gc = createGroupCommitter<number, number>({
      maxBatch: 100,
      commit: async (items) => {
        batches.push(items);
        if (batches.length === 1) await new Promise<void>((r) => (release = r));
        return items;
      },
    });
    const first = gc.submit([1]);
    await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[1]]);
    const rest = [gc.submit([2]), gc.submit([3]), gc.submit([4])];
    await new Promise((r) => setImmediate(r));
    // Still one commit in flight: the others wait for it rather than commit alongside.
    expect(batches).toEqual([[1]]);
    release?.();
    await expect(first).resolves.toEqual([1]);
    await expect(Promise.all(rest)).resolves.toEqual([[2], [3], [4]]);
    expect(batches).toEqual([[1], [2, 3, 4]]);
  });
});
