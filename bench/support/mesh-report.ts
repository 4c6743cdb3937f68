/**
 * Tables of the mesh benchmark: throughput and latency per concurrency level (plus the soak),
 * failures by gRPC code, and RSS of every process before and after the soak.
 */
import type { PhaseResult } from './load-protocol.ts';
import type { RssSample } from './rss.ts';

/** Resident memory of one process before and after the soak (KiB), its growth and the verdict. */
export interface RssRow {
  name: string;
  pid: number;
  /** VmRSS right after `bulwark up` was ready (when the process has not been restarted since). */
  startKiB?: number;
  beforeKiB?: number;
  /** Highest VmRSS seen during the soak (sampled every 5 s) or after it. */
  peakKiB?: number;
  afterKiB?: number;
  /** VmRSS (after - before) / before: what the target is about. */
  growth?: number;
  /** RssAnon (heap, stacks) before and after, and its growth: a leak shows here. */
  anonBeforeKiB?: number;
  anonAfterKiB?: number;
  anonGrowth?: number;
  /**
   * Least-squares slope of VmRSS over the second half of the soak, MiB per minute: near 0 when
   * memory has levelled off, steady and positive when it keeps growing.
   */
  trendMiBPerMin?: number;
  /** Exits of the service while measured (a restart makes the growth meaningless). */
  restarts: number;
  /** `pass` when growth <= target, `fail` above it, `n/a` without both samples or after a restart. */
  verdict: 'pass' | 'fail' | 'n/a';
}

type Samples = Record<string, RssSample | undefined>;

const ratio = (after?: number, before?: number) =>
  after !== undefined && before !== undefined && before > 0 ? (after - before) / before : undefined;

/**
 * Least-squares slope of (seconds, KiB) points, in MiB per minute; undefined below 6 points
 * (the second half of a soak shorter than a minute says nothing).
 */
export function slopeMiBPerMin(
  points: readonly { atSec: number; kib: number }[],
): number | undefined {
  if (points.length < 6) return undefined;
  const n = points.length;
  const mx = points.reduce((a, p) => a + p.atSec, 0) / n;
  const my = points.reduce((a, p) => a + p.kib, 0) / n;
  const sxx = points.reduce((a, p) => a + (p.atSec - mx) ** 2, 0);
  if (sxx === 0) return undefined;
  const sxy = points.reduce((a, p) => a + (p.atSec - mx) * (p.kib - my), 0);
  return ((sxy / sxx) * 60) / 1024;
}

/** One row per process from the samples taken at start, before, during and after the soak. */
export function rssRows(input: {
  pids: Record<string, number>;
  startPids: Record<string, number>;
  start: Samples;
  before: Samples;
  during: { atSec: number; rss: Samples }[];
  after: Samples;
  restarts: Record<string, number>;
  targetGrowth: number;
}): RssRow[] {
  return Object.entries(input.pids).map(([name, pid]) => {
    const restarts = input.restarts[name] ?? 0;
    const start = input.startPids[name] === pid ? input.start[name]?.rss : undefined;
    const before = input.before[name];
    const after = input.after[name];
    const seen = [...input.during.map((s) => s.rss[name]?.rss), after?.rss].filter(
      (v): v is number => v !== undefined,
    );
    const growth = ratio(after?.rss, before?.rss);
    const anonGrowth = ratio(after?.anon, before?.anon);
    const lastAt = input.during.at(-1)?.atSec ?? 0;
    const trend = slopeMiBPerMin(
      input.during
        .filter((s) => s.atSec >= lastAt / 2 && s.rss[name] !== undefined)
        .map((s) => ({ atSec: s.atSec, kib: s.rss[name]!.rss })),
    );
    const row: RssRow = {
      name,
      pid,
      restarts,
      verdict:
        growth === undefined || restarts > 0
          ? 'n/a'
          : growth <= input.targetGrowth
            ? 'pass'
            : 'fail',
    };
    if (start !== undefined) row.startKiB = start;
    if (before) row.beforeKiB = before.rss;
    if (seen.length) row.peakKiB = Math.max(...seen);
    if (after) row.afterKiB = after.rss;
    if (growth !== undefined) row.growth = growth;
    if (before?.anon !== undefined) row.anonBeforeKiB = before.anon;
    if (after?.anon !== undefined) row.anonAfterKiB = after.anon;
    if (anonGrowth !== undefined) row.anonGrowth = anonGrowth;
    if (trend !== undefined && restarts === 0) row.trendMiBPerMin = trend;
    return row;
  });
}

const sum = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
const mb = (kib?: number) => (kib === undefined ? '-' : (kib / 1024).toFixed(1));
const pct = (v?: number) => (v === undefined ? '-' : `${(v * 100).toFixed(1)}%`);
const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '-');

function counts(c: Record<string, number>): string {
  const entries = Object.entries(c);
  return entries.length ? entries.map(([k, v]) => `${k}: ${v}`).join(', ') : 'none';
}

export function phaseTable(phases: PhaseResult[]): string[] {
  const lines = [
    'phase       conc   rate    secs   answered   ok req/s   p50 ms   p99 ms   max ms  refused  errors  calls/s',
  ];
  for (const p of phases) {
    lines.push(
      [
        p.name.padEnd(10),
        String(p.concurrency).padStart(5),
        (p.ratePerSec ? String(p.ratePerSec) : 'open').padStart(6),
        p.seconds.toFixed(1).padStart(7),
        String(p.ok).padStart(10),
        p.okPerSec.toFixed(1).padStart(10),
        ms(p.p50Ms).padStart(8),
        ms(p.p99Ms).padStart(8),
        ms(p.maxMs).padStart(8),
        String(sum(p.refused)).padStart(8),
        String(sum(p.errors)).padStart(7),
        (p.attempted / p.seconds).toFixed(1).padStart(8),
      ].join(' '),
    );
  }
  lines.push('');
  for (const p of phases) {
    lines.push(
      `${p.name}: refused (quota/extraction) ${counts(p.refused)}; errors ${counts(p.errors)}; ` +
        `answers without audit receipt ${p.okWithoutReceipt}; extraction states ${counts(p.extractionStates)}; ` +
        `token renewals ${p.tokenRefreshes} (failed ${p.tokenRefreshFailures})`,
    );
  }
  return lines;
}

export function rssTable(rows: RssRow[], targetGrowth: number): string[] {
  const lines = [
    'process        pid    start MB  before MB  peak MB  after MB  growth  anon MB before/after (growth)  MB/min  restarts  verdict',
  ];
  for (const r of rows) {
    lines.push(
      [
        r.name.padEnd(13),
        String(r.pid).padStart(6),
        mb(r.startKiB).padStart(9),
        mb(r.beforeKiB).padStart(10),
        mb(r.peakKiB).padStart(8),
        mb(r.afterKiB).padStart(9),
        pct(r.growth).padStart(7),
        `${mb(r.anonBeforeKiB)}/${mb(r.anonAfterKiB)} (${pct(r.anonGrowth)})`.padStart(29),
        (r.trendMiBPerMin === undefined ? '-' : r.trendMiBPerMin.toFixed(2)).padStart(7),
        String(r.restarts).padStart(9),
        `  ${r.verdict}`,
      ].join(' '),
    );
  }
  lines.push(
    `target: RSS growth over the soak <= ${(targetGrowth * 100).toFixed(0)}% per service.`,
  );
  return lines;
}
