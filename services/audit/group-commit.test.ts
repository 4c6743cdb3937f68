import { createGroupCommitter } from './group-commit.ts';

describe('group commit', () => {
  it('shares commits between concurrent submissions and answers each with its own results', async () => {
    const batches: number[][] = [];
    const gc = createGroupCommitter<number, string>({
      windowMs: 2,
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
      windowMs: 1,
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
      windowMs: 1,
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

  it('drain commits what is queued without waiting for the window', async () => {
    const committed: number[] = [];
    const gc = createGroupCommitter<number, number>({
      windowMs: 2,
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
});
