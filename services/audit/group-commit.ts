/**
 * Group commit without an idle wait: callers submit work and wait; at most one `commit` runs at
 * a time. When nothing is in flight, what is queued commits on the next turn of the event loop
 * (`setImmediate`: everything that arrived in the same I/O poll shares the commit, but nobody
 * waits on a timer). While a commit is in flight, new submissions gather into the next batch,
 * which commits as soon as the previous one finishes, or once it holds `maxBatch` items and
 * the previous one is done. So a lone caller pays one commit, and under load the batch size
 * grows with the commit time instead of with a fixed window.
 *
 * Only when `commit` resolves are the callers answered; if it throws, every caller in that
 * batch gets the error. Submissions are never split across commits (unless one alone exceeds
 * `maxBatch`).
 *
 * @example
 * ```ts
 * const gc = createGroupCommitter({ maxBatch: 1024, commit: async (rows) => store.insert(rows) });
 * const [result] = await gc.submit([row]);
 * ```
 */
export interface GroupCommitOptions<T, R> {
  /** Most items in one commit (a single larger submission still commits alone). */
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
  const { maxBatch, commit } = options;
  let queue: Pending<T, R>[] = [];
  let queued = 0;
  let scheduled = false;
  let flushing: Promise<void> | undefined;

  const startFlush = () => {
    scheduled = false;
    if (flushing || queued === 0) return;
    flushing = flush();
  };

  const schedule = () => {
    if (flushing || scheduled || queued === 0) return;
    scheduled = true;
    setImmediate(startFlush);
  };

  const takeBatch = (): Pending<T, R>[] => {
    let count = 0;
    let n = 0;
    while (n < queue.length) {
      const size = (queue[n] as Pending<T, R>).items.length;
      if (count > 0 && count + size > maxBatch) break;
      count += size;
      n++;
    }
    queued -= count;
    if (n === queue.length) {
      const all = queue;
      queue = [];
      return all;
    }
    return queue.splice(0, n);
  };

  const flush = async (): Promise<void> => {
    const batch = takeBatch();
    let items: T[];
    if (batch.length === 1) items = (batch[0] as Pending<T, R>).items;
    else {
      items = [];
      for (const p of batch) for (const it of p.items) items.push(it);
    }
    try {
      const results = await commit(items);
      if (batch.length === 1) (batch[0] as Pending<T, R>).resolve(results);
      else {
        let k = 0;
        for (const p of batch) {
          const n = p.items.length;
          p.resolve(n === 1 ? [results[k] as R] : results.slice(k, k + n));
          k += n;
        }
      }
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      flushing = undefined;
      // The next batch gathered while this one was in flight: commit it now, no waiting.
      if (queued > 0) flushing = flush();
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
        flushing ??= flush();
        await flushing;
      }
    },
  };
}
