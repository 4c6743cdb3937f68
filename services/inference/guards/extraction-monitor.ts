/**
 * Step 8: the model-extraction monitor, after PRADA (Juuti et al., 2019). For each client and
 * model it keeps, per predicted class, a growing set of past queries and the distribution of
 * each new query's minimum distance to that set (features scaled to [0, 1] by the manifest's
 * ranges). Benign traffic gives a roughly log-normal distance distribution; synthetic probing
 * (line searches, perturbations of a few seeds) does not. When the Shapiro–Francia statistic
 * falls below the threshold the client is flagged, and if the test keeps failing it is
 * throttled and finally blocked. Every change of state is returned so the caller audits it.
 */
import { InferenceError } from '../errors.ts';
import { shapiroFrancia } from './normality.ts';

export type ExtractionState = 'normal' | 'flagged' | 'throttled' | 'blocked';

export interface ExtractionMonitorOptions {
  /** Distances needed before the test runs. Default 100. */
  minSamples?: number;
  /** W' (of log distances) below this fails the test. Default 0.95. */
  threshold?: number;
  /** Distances and per-class points kept (most recent). Default 1000. */
  window?: number;
  /** Run the test every this many distances. Default 5. */
  testEvery?: number;
  /** Failed tests after the flag that lead to throttling. Default 10. */
  throttleAfter?: number;
  /** Failed tests after the flag that lead to blocking. Default 100. */
  blockAfter?: number;
  /**
   * Most (client, model) pairs tracked. Beyond it the least recently seen normal pair is
   * forgotten; flagged, throttled and blocked pairs are kept. Default 10000.
   */
  maxTracks?: number;
  /** Requests per second a throttled client may still make. Default 1. */
  throttledRatePerSec?: number;
  now?: () => number;
}

export interface ExtractionTransition {
  from: ExtractionState;
  to: ExtractionState;
  statistic: number;
  samples: number;
}

export interface ExtractionVerdict {
  state: ExtractionState;
  statistic?: number;
  transition?: ExtractionTransition;
}

export interface ExtractionMonitor {
  /** Refuses a blocked client (PERMISSION_DENIED) or a throttled one over its rate (RESOURCE_EXHAUSTED). */
  admit(client: string, model: string): void;
  /** Records the rows of one answered request and re-evaluates the client. */
  observe(
    client: string,
    model: string,
    rows: readonly number[][],
    labels: readonly number[],
  ): ExtractionVerdict;
  state(client: string, model: string): ExtractionState;
}

interface Track {
  points: Map<number, number[][]>;
  distances: number[];
  sinceTest: number;
  state: ExtractionState;
  failures: number;
  lastStatistic?: number;
  lastAdmit: number;
}

function distance(a: readonly number[], b: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - (b[i] ?? 0)) ** 2;
  return Math.sqrt(s);
}

/**
 * @example
 * ```ts
 * const monitor = createExtractionMonitor();
 * monitor.admit(client, 'iris');
 * const verdict = monitor.observe(client, 'iris', scaledRows, predictedLabels);
 * if (verdict.transition) await audit(verdict.transition);
 * ```
 */
export function createExtractionMonitor(options: ExtractionMonitorOptions = {}): ExtractionMonitor {
  const o = {
    minSamples: 100,
    threshold: 0.95,
    window: 1000,
    testEvery: 5,
    throttleAfter: 10,
    blockAfter: 100,
    throttledRatePerSec: 1,
    maxTracks: 10_000,
    now: Date.now,
    ...options,
  };
  const tracks = new Map<string, Track>();
  const track = (client: string, model: string): Track => {
    const key = `${client}\u0000${model}`;
    let t = tracks.get(key);
    if (t) {
      // Re-insert: Map order is then least recently seen first.
      tracks.delete(key);
      tracks.set(key, t);
    } else {
      if (tracks.size >= o.maxTracks) {
        for (const [k, v] of tracks) {
          if (v.state === 'normal') {
            tracks.delete(k);
            break;
          }
        }
      }
      t = {
        points: new Map(),
        distances: [],
        sinceTest: 0,
        state: 'normal',
        failures: 0,
        lastAdmit: -Infinity,
      };
      tracks.set(key, t);
    }
    return t;
  };

  return {
    admit(client, model) {
      const t = tracks.get(`${client}\u0000${model}`);
      if (!t) return;
      if (t.state === 'blocked') {
        throw new InferenceError(
          'ERR_INFERENCE_EXTRACTION_BLOCKED',
          `query pattern on model ${model} looks like model extraction; access is blocked`,
        );
      }
      if (t.state === 'throttled') {
        const now = o.now();
        if (now - t.lastAdmit < 1000 / o.throttledRatePerSec) {
          throw new InferenceError(
            'ERR_INFERENCE_QUOTA_EXCEEDED',
            `query pattern on model ${model} looks like model extraction; throttled to ${o.throttledRatePerSec}/s`,
          );
        }
        t.lastAdmit = now;
      }
    },
    observe(client, model, rows, labels) {
      const t = track(client, model);
      rows.forEach((row, i) => {
        const label = labels[i] ?? 0;
        const group = t.points.get(label) ?? [];
        t.points.set(label, group);
        if (group.length === 0) {
          group.push([...row]);
          return;
        }
        let min = Infinity;
        for (const p of group) min = Math.min(min, distance(row, p));
        // An exact repeat reveals nothing new (and caches answer it the same way): not counted.
        if (min === 0) return;
        t.distances.push(min);
        if (t.distances.length > o.window) t.distances.shift();
        t.sinceTest++;
        // PRADA grows the set only with queries that are not too close to what it holds.
        const n = t.distances.length;
        const mean = t.distances.reduce((a, b) => a + b, 0) / n;
        const sd = Math.sqrt(t.distances.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
        if (min > mean - sd) {
          group.push([...row]);
          if (group.length > o.window) group.shift();
        }
      });
      if (t.distances.length < o.minSamples || t.sinceTest < o.testEvery) {
        return {
          state: t.state,
          ...(t.lastStatistic !== undefined ? { statistic: t.lastStatistic } : {}),
        };
      }
      t.sinceTest = 0;
      // Nearest-neighbour distances of benign traffic are right-skewed; their logarithm is close
      // to normal, which keeps benign clients well above the threshold.
      const statistic = shapiroFrancia(t.distances.map((d) => Math.log(d + 1e-4)));
      t.lastStatistic = statistic;
      const from = t.state;
      if (statistic < o.threshold) {
        if (t.state === 'normal') t.state = 'flagged';
        else t.failures++;
        if (t.failures >= o.blockAfter) t.state = 'blocked';
        else if (t.failures >= o.throttleAfter && t.state === 'flagged') t.state = 'throttled';
      }
      const verdict: ExtractionVerdict = { state: t.state, statistic };
      if (t.state !== from) {
        verdict.transition = { from, to: t.state, statistic, samples: t.distances.length };
      }
      return verdict;
    },
    state(client, model) {
      return tracks.get(`${client}\u0000${model}`)?.state ?? 'normal';
    },
  };
}
