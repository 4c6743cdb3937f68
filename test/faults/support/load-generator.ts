/**
 * A bounded load generator: a fixed number of concurrent callers, each calling in a loop until
 * stopped, until its call budget is spent or until the time limit, whichever comes first.
 * Every call is recorded with its start and end time (`performance.now()`), so a test can ask
 * what happened in a time window (before a kill, during an outage, after a restart).
 */

/** What one call produced: a gRPC status code (0 = OK) and, for answers, the audit receipt. */
export interface CallOutcome {
  code: number;
  details: string;
  leafIndex?: number;
}

export interface CallRecord extends CallOutcome {
  caller: number;
  seq: number;
  /** Unique request id (sent as the OIP request `id`, audited as `request_id`). */
  id: string;
  start: number;
  end: number;
}

export interface LoadOptions {
  /** Concurrent callers. */
  callers: number;
  /** Hard time limit of the whole run. */
  maxDurationMs: number;
  /** Most calls per caller. Default unlimited (the time limit bounds the run). */
  maxCallsPerCaller?: number;
  /** Least time between the starts of two calls of one caller (paces it under quotas). */
  minIntervalMs: number;
  call(caller: number, seq: number, id: string): Promise<CallOutcome>;
}

export interface LoadGenerator {
  readonly records: readonly CallRecord[];
  /** Resolves once `predicate(records)` holds; rejects after `timeoutMs` or when the run ended. */
  until(predicate: (records: readonly CallRecord[]) => boolean, timeoutMs: number): Promise<void>;
  /** Stops starting calls and resolves once every call in flight has ended. */
  stop(): Promise<readonly CallRecord[]>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * @example
 * ```ts
 * const load = startLoad({ callers: 4, maxDurationMs: 30_000, minIntervalMs: 25, call });
 * await load.until((r) => r.filter((c) => c.code === 0).length >= 20, 20_000);
 * const records = await load.stop();
 * ```
 */
export function startLoad(options: LoadOptions): LoadGenerator {
  const records: CallRecord[] = [];
  const startedAt = performance.now();
  let stopped = false;
  const running = () => !stopped && performance.now() - startedAt < options.maxDurationMs;

  const loop = async (caller: number) => {
    for (let seq = 0; running() && seq < (options.maxCallsPerCaller ?? Infinity); seq++) {
      const id = `c${caller}-${seq}-${startedAt.toFixed(0)}`;
      const start = performance.now();
      let outcome: CallOutcome;
      try {
        outcome = await options.call(caller, seq, id);
      } catch (err) {
        // A bug in the call function must not look like a service answer.
        outcome = { code: -1, details: err instanceof Error ? err.message : String(err) };
      }
      const end = performance.now();
      records.push({ caller, seq, id, start, end, ...outcome });
      const wait = options.minIntervalMs - (end - start);
      if (wait > 0) await sleep(wait);
    }
  };
  const done = Promise.all(Array.from({ length: options.callers }, (_, i) => loop(i)));

  return {
    records,
    async until(predicate, timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      while (!predicate(records)) {
        if (performance.now() > deadline) {
          throw new Error(`load condition not met within ${timeoutMs} ms (${summary(records)})`);
        }
        if (!running()) throw new Error(`load ended before the condition (${summary(records)})`);
        await sleep(20);
      }
    },
    async stop() {
      stopped = true;
      await done;
      return records;
    },
  };
}

/** Counts per status code, e.g. `0:120 14:37`, for failure messages. */
export function summary(records: readonly CallRecord[]): string {
  const counts = new Map<number, number>();
  for (const r of records) counts.set(r.code, (counts.get(r.code) ?? 0) + 1);
  return [...counts]
    .sort((a, b) => a[0] - b[0])
    .map(([code, n]) => `${code}:${n}`)
    .join(' ');
}
