/**
 * Whole-mesh benchmark: the processes `bulwark up` starts (demo partner IdPs, identity broker,
 * audit on SQLite, policy, inference with the demo models), called from a separate
 * load-generator process the way a partner back-end calls them: a client-credentials token from
 * the broker, then ModelInfer on iris over TLS with the bearer token; inference checks the token,
 * asks policy, takes quota, runs the model and answers only after audit acknowledged the record.
 *
 * Measured: successful requests/s and p50/p99 latency at concurrency 1, 16 and 64 (closed loop,
 * unpaced), failures by gRPC code; then RSS (`/proc/<pid>/status` VmRSS) of every process
 * before and after a soak at a steady paced load, growth <= 10% being the target.
 *
 * Identities: the four clients `bulwark up` registers, each its own quota subject:
 * `acme-backend` and `globex-backend` (client secret, bearer token) and `acme-backend-mtls` and
 * `globex-backend-mtls` (partner client certificate, certificate-bound token over mTLS). Iris
 * is a low-risk model: 50 requests/s per subject sustained (burst 100, 100k a day), so 200/s
 * in all. Unpaced levels that go beyond it get RESOURCE_EXHAUSTED refusals: those are counted
 * apart from errors, and latencies are of successful calls only. The soak is paced below the
 * quota (default 160/s) so that it measures served traffic.
 *
 * Knobs: BENCH_SECONDS (per level, default 10), BENCH_WARMUP_SECONDS (default 2),
 * BENCH_SOAK_SECONDS (default 300), BENCH_SOAK_CONCURRENCY (default 16), BENCH_SOAK_RATE
 * (requests/s in all, default 160).
 */
import { join } from 'node:path';
import type { BenchReport } from './run.ts';
import { DEFAULT_TIER_QUOTAS } from '../services/inference/guards/quota.ts';
import type { LoadPlan, PhaseResult } from './support/load-protocol.ts';
import { startLoadProcess, type LoadProcess } from './support/load-process.ts';
import { phaseTable, rssRows, rssTable, type RssRow } from './support/mesh-report.ts';
import { startUpMesh, type UpMesh } from './support/mesh-up.ts';
import { sampleRss, type RssSample } from './support/rss.ts';

const LEVELS = [1, 16, 64];
const TARGET_GROWTH = 0.1;
/** Iris is low risk: its per-subject rate, as inference enforces it. */
const IRIS_QUOTA_PER_SUBJECT = DEFAULT_TIER_QUOTAS.low.ratePerSec;

function knob(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0)
    throw new RangeError(`${name} must be > 0, got ${raw}`);
  return value;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`mesh: ${line}\n`);

function loadPlan(mesh: UpMesh): LoadPlan {
  const certs = join(mesh.stateDir, 'certs');
  const orgs = ['acme', 'globex'];
  return {
    caFile: join(certs, 'ca.crt'),
    tokenUrl: `https://127.0.0.1:${mesh.base}/token`,
    inferenceAddress: `127.0.0.1:${mesh.base + 3}`,
    identities: [
      ...orgs.map((org) => ({
        clientId: `${org}-backend`,
        secretFile: join(mesh.stateDir, 'secrets', `${org}-backend-client-secret`),
      })),
      ...orgs.map((org) => ({
        clientId: `${org}-backend-mtls`,
        certFile: join(certs, 'partners', org, 'backend.crt'),
        keyFile: join(certs, 'partners', org, 'backend.key'),
      })),
    ],
    callDeadlineMs: 10_000,
  };
}

export async function run(): Promise<BenchReport> {
  const seconds = knob('BENCH_SECONDS', 10);
  const warmupSeconds = knob('BENCH_WARMUP_SECONDS', 2);
  const soakSeconds = knob('BENCH_SOAK_SECONDS', 300);
  const soakConcurrency = knob('BENCH_SOAK_CONCURRENCY', 16);
  const soakRate = knob('BENCH_SOAK_RATE', 160);

  let mesh: UpMesh | undefined;
  let load: LoadProcess | undefined;
  type Stopped = Awaited<ReturnType<UpMesh['stop']>>;
  let cleaning: Promise<Stopped | undefined> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      await load?.stop();
      return mesh?.stop();
    })());
  // Ctrl-C during the run: stop every process and remove the state before exiting.
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const phases: PhaseResult[] = [];
  let rss: RssRow[];
  let subjects: string[];
  let stopped: Stopped | undefined;
  const series: { atSec: number; rss: Record<string, RssSample | undefined> }[] = [];
  try {
    log('starting bulwark up (temporary state directory, free loopback ports)');
    mesh = await startUpMesh({ readyTimeoutMs: 180_000, progress: log });
    const up = mesh;
    const processes = (): Record<string, number> => ({
      ...up.pids(),
      'bulwark up': up.launcherPid,
    });
    const startPids = processes();
    const start = sampleRss(startPids);
    log(`mesh is up on port base ${up.base}; starting the load generator`);
    load = await startLoadProcess(loadPlan(up), 60_000);
    subjects = load.subjects;
    for (const concurrency of LEVELS) {
      log(`concurrency ${concurrency}: ${warmupSeconds}s warm-up, ${seconds}s measured`);
      phases.push(
        await load.run({
          name: `c${concurrency}`,
          concurrency,
          warmupMs: warmupSeconds * 1000,
          durationMs: seconds * 1000,
        }),
      );
      await sleep(2000); // let the quota buckets refill between levels
    }

    const exitsBefore = up.exits();
    const before = sampleRss(processes());
    log(`soak: ${soakSeconds}s at concurrency ${soakConcurrency}, ${soakRate} requests/s`);
    const t0 = Date.now();
    const sampler = setInterval(() => {
      series.push({ atSec: Math.round((Date.now() - t0) / 1000), rss: sampleRss(processes()) });
    }, 5000);
    try {
      phases.push(
        await load.run({
          name: 'soak',
          concurrency: soakConcurrency,
          warmupMs: 0,
          durationMs: soakSeconds * 1000,
          ratePerSec: soakRate,
        }),
      );
    } finally {
      clearInterval(sampler);
    }
    await sleep(2000); // same idle pause as before the soak
    const after = sampleRss(processes());
    const exitsAfter = up.exits();
    rss = rssRows({
      pids: processes(),
      startPids,
      start,
      before,
      during: series,
      after,
      restarts: Object.fromEntries(
        Object.entries(exitsAfter).map(([n, c]) => [n, c - (exitsBefore[n] ?? 0)]),
      ),
      targetGrowth: TARGET_GROWTH,
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    stopped = await cleanup();
    log(
      `stopped: bulwark up exited with ${String(stopped?.launcherExit)}; ` +
        `processes killed after the grace period: ${stopped?.leftovers.length ?? 0}; state removed`,
    );
  }

  const text = [
    `identities (quota subjects): ${subjects.join(', ')}; iris quota ${IRIS_QUOTA_PER_SUBJECT}/s ` +
      `each = ${IRIS_QUOTA_PER_SUBJECT * subjects.length}/s in all`,
    `levels: closed loop, ${warmupSeconds} s warm-up then ${seconds} s measured each; soak: ` +
      `${soakSeconds} s at concurrency ${soakConcurrency} paced to ${soakRate} requests/s.`,
    'ok req/s and latencies count successful answers (audited, with a receipt); calls/s counts ' +
      'every call, quota refusals included.',
    '',
    ...phaseTable(phases),
    '',
    `RSS (VmRSS) at start, just before the soak, peak during it (every 5 s), just after it:`,
    ...rssTable(rss, TARGET_GROWTH),
  ].join('\n');
  return {
    title:
      'mesh: whole path through `bulwark up` (token, TLS, policy, quota, audit-before-answer) from a separate load process',
    text,
    data: {
      settings: {
        levels: LEVELS,
        secondsPerLevel: seconds,
        warmupSeconds,
        soakSeconds,
        soakConcurrency,
        soakRatePerSec: soakRate,
        irisQuotaPerSubjectPerSec: IRIS_QUOTA_PER_SUBJECT,
        rssGrowthTarget: TARGET_GROWTH,
      },
      subjects,
      phases,
      rss,
      rssSeries: series,
      shutdown: stopped ?? null,
    },
  };
}
