/**
 * Group commit: callers submit work and wait; the first submission arms a timer of
 * `windowMs` (or reaching `maxBatch` items commits at once), and one `commit` call then takes
 * everything queued. Only when it resolves are the callers answered; if it throws, every caller
 * in that batch gets the error. Submissions are never split across commits (unless one alone
 * exceeds `maxBatch`).
 *
 * @example
 * ```ts
 * const gc = createGroupCommitter({ windowMs: 2, maxBatch: 1024, commit: async (rows) => store.insert(rows) });
 * const [result] = await gc.submit([row]);
 * ```
 */
export interface GroupCommitOptions<T, R> {
  windowMs: number;
  maxBatch: number;
  /** Commits a batch; returns one result per item, in order. */
  commit(items: T[]): Promise<R[]>;
}

export interface GroupCommitter<T, R> {
  submit(items: T[]): Promise<R[]>;
  /** Commits whatever is queued now and waits until nothing is in flight. */
  drain(): Promise<void>;
}

interface Pending<T, R> {
  items: T[];
  resolve: (r: R[]) => void;
  reject: (e: unknown) => void;
}

export function createGroupCommitter<T, R>(
  options: GroupCommitOptions<T, R>,
): GroupCommitter<T, R> {
  const { windowMs, maxBatch, commit } = options;
  const queue: Pending<T, R>[] = [];
  let queued = 0;
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> | undefined;

  const schedule = () => {
    if (flushing || queued === 0) return;
    if (queued >= maxBatch) {
      if (timer) clearTimeout(timer);
      timer = undefined;
      flushing = flush();
    } else if (!timer) {
      timer = setTimeout(() => {
        timer = undefined;
        flushing ??= flush();
      }, windowMs);
    }
  };

  const flush = async (): Promise<void> => {
    const batch: Pending<T, R>[] = [];
    let count = 0;
    while (
      queue.length > 0 &&
      (count === 0 || count + (queue[0] as Pending<T, R>).items.length <= maxBatch)
    ) {
      const p = queue.shift() as Pending<T, R>;
      batch.push(p);
      count += p.items.length;
    }
    queued -= count;
    try {
      const results = await commit(batch.flatMap((p) => p.items));
      let k = 0;
      for (const p of batch) {
        p.resolve(results.slice(k, k + p.items.length));
        k += p.items.length;
      }
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      flushing = undefined;
      schedule();
    }
  };

  return {
    submit: (items) =>
      new Promise<R[]>((resolve, reject) => {
        queue.push({ items, resolve, reject });
        queued += items.length;
        schedule();
      }),
    drain: async () => {
      while (queued > 0 || flushing) {
        if (timer) clearTimeout(timer);
        timer = undefined;
        flushing ??= flush();
        await flushing;
      }
    },
  };
}
