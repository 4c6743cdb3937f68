import type { Counter, Histogram } from 'prom-client';

/**
 * Per-call metric updates without prom-client's per-call work. `counter.inc(labels)` and
 * `histogram.observe(labels, v)` validate and hash the label object and allocate a result on
 * every call, and their `labels(...)` children do the same; the gRPC metrics are updated on
 * every call with one of a handful of fixed label sets. A child here does the first update
 * through the public API, then remembers the series prom-client created and bumps it in place
 * for as long as prom-client still holds that very series (a `reset()` replaces it, and the
 * next update goes through the public API again). What prom-client exposes is unchanged.
 */

/** A counter series with fixed labels. */
export interface CounterChild {
  inc(): void;
}

/** A histogram series with fixed labels. */
export interface HistogramChild {
  observe(value: number): void;
}

// prom-client's storage, as version 15 keeps it: one entry per label set, keyed by a hash.
interface CounterSeries {
  value: number;
  labels: Record<string, string | number>;
}
interface HistogramSeries {
  labels: Record<string, string | number>;
  bucketValues: Record<string, number>;
  sum: number;
  count: number;
}
type SeriesMap<S> = Record<string, S | undefined>;

function seriesMapOf<S>(metric: object): SeriesMap<S> | undefined {
  const map = (metric as { hashMap?: unknown }).hashMap;
  return typeof map === 'object' && map !== null ? (map as SeriesMap<S>) : undefined;
}

/** Finds the series with exactly these label values (only after a public-API update). */
function findSeries<S extends { labels: Record<string, string | number> }>(
  map: SeriesMap<S> | undefined,
  labels: Record<string, string>,
): { key: string; series: S } | undefined {
  if (!map) return undefined;
  const names = Object.keys(labels);
  for (const key in map) {
    const series = map[key];
    if (!series || typeof series !== 'object' || !series.labels) continue;
    const found = series.labels;
    if (Object.keys(found).length !== names.length) continue;
    if (names.every((name) => found[name] === labels[name])) return { key, series };
  }
  return undefined;
}

/** A {@link CounterChild} of `counter` for `labels` (which must name every label). */
export function counterChild<T extends string>(
  counter: Counter<T>,
  labels: Record<T, string>,
): CounterChild {
  let key = '';
  let cached: CounterSeries | undefined;
  return {
    inc() {
      const map = seriesMapOf<CounterSeries>(counter);
      if (cached !== undefined && map?.[key] === cached) {
        cached.value += 1;
        return;
      }
      counter.inc(labels, 1);
      const found = findSeries(map ?? seriesMapOf<CounterSeries>(counter), labels);
      cached = found?.series;
      key = found?.key ?? '';
    },
  };
}

/**
 * A {@link HistogramChild} of `histogram` for `labels`; `buckets` must be the upper bounds the
 * histogram was created with.
 */
export function histogramChild<T extends string>(
  histogram: Histogram<T>,
  labels: Record<T, string>,
  buckets: readonly number[],
): HistogramChild {
  let key = '';
  let cached: HistogramSeries | undefined;
  const bucketKeys = buckets.map(String);
  return {
    observe(value) {
      const map = seriesMapOf<HistogramSeries>(histogram);
      if (cached !== undefined && map?.[key] === cached && Number.isFinite(value)) {
        cached.sum += value;
        cached.count += 1;
        // Buckets are not cumulative in storage: prom-client sums them when it exposes them.
        for (let i = 0; i < buckets.length; i += 1) {
          if (value <= buckets[i]!) {
            const bucket = bucketKeys[i]!;
            if (cached.bucketValues[bucket] !== undefined) cached.bucketValues[bucket] += 1;
            break;
          }
        }
        return;
      }
      histogram.observe(labels, value);
      const found = findSeries(map ?? seriesMapOf<HistogramSeries>(histogram), labels);
      cached = found?.series;
      key = found?.key ?? '';
    },
  };
}
