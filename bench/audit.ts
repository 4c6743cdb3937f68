/**
 * Audit benchmarks (`npm run bench -- audit`):
 * - durable appends/s and acknowledgement latency (p50/p99) with 1, 16 and 256 concurrent
 *   appenders over mTLS, against the service running as its own process, SQLite and PostgreSQL
 *   (PostgreSQL with fsync and synchronous_commit on): unary Append (one record per call) and
 *   AppendBatch (each appender streams `AUDIT_BENCH_BATCH` records, default 100, and waits for
 *   the stream's acknowledgement); through the mesh's own append pipeline (each appender
 *   appends one record at a time and waits for its receipt, while the appenders of one client
 *   process share `createAuditPipeline`, as concurrent inference calls do: one call on the
 *   wire, the records that arrive meanwhile gathered into the next AppendBatch); and the same
 *   commit path in-process without gRPC. The appenders are spread over several client
 *   processes (each with its own connection) so one client's CPU is not what is measured;
 * - inclusion and consistency proof time from the stored node table at 10^4, 10^6 and 10^7
 *   leaves (10^7 when `AUDIT_BENCH_HUGE=1`, it takes minutes to build);
 * - offline verification speed in leaves/s.
 *
 * Knobs (environment): `AUDIT_BENCH_SECONDS` (per load step, default 4), `AUDIT_BENCH_CLIENTS`
 * (client processes, default 2), `AUDIT_BENCH_APPENDERS` (default `1,16,256`),
 * `AUDIT_BENCH_PARTS` (`sqlite,postgres,proofs,verify`), `AUDIT_BENCH_BATCH`, `AUDIT_BENCH_NO_BATCH=1`,
 * `AUDIT_BENCH_PIPELINE_IN_FLIGHT` (the pipeline's calls under way at once, default 1 as in
 * inference),
 * `AUDIT_BENCH_VERIFY_LEAVES` (default 500,000), `AUDIT_BENCH_HUGE=1`, and
 * `AUDIT_BENCH_SERVICE_ARGS` (extra flags of the audit service, e.g. `--no-verify-on-start`),
 * `AUDIT_BENCH_NODE_ARGS` (extra Node flags for the service and client processes, e.g.
 * `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile both sides).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DatabaseSync } from 'node:sqlite';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { pino } from 'pino';
import {
  AppendRequest,
  AuditRecord,
  AuditServiceClient,
  EventType,
  Outcome,
  type AppendResponse,
} from '../gen/bulwark/audit/v1/audit.ts';
import { createTestPki } from '../mesh/ca/testing.ts';
import { createMeshClient } from '../mesh/kit/index.ts';
import { promiseAuditClient } from '../services/inference/server/grpc-clients.ts';
import { openAuditLog } from '../services/audit/log.ts';
import {
  consistencyRanges,
  hashLeaf,
  inclusionRanges,
  verifyConsistency,
  verifyInclusion,
  type Hash,
} from '../services/audit/merkle.ts';
import { parseVerifierKey } from '../services/audit/note.ts';
import { openSqliteStore } from '../services/audit/store/sqlite-store.ts';
import { openPostgresStore } from '../services/audit/store/postgres-store.ts';
import type { AuditStore } from '../services/audit/store/types.ts';
import {
  appendToFrontier,
  EMPTY_FRONTIER,
  frontierRoot,
  hashRange,
  nodeKey,
  nodesForRanges,
  type Frontier,
} from '../services/audit/tree-nodes.ts';
import { verifyStore } from '../services/audit/verify.ts';
import { startPostgres } from '../test/support/postgres.ts';
import type { BenchReport } from './run.ts';
import { processCpuSeconds } from './support/cpu.ts';

const MAIN = join(import.meta.dirname, '..', 'services', 'audit', 'main.ts');
const SECONDS = Number(process.env.AUDIT_BENCH_SECONDS ?? 4);
/** Extra Node flags for the service and client processes, e.g. `--cpu-prof` to profile both. */
const NODE_ARGS = (process.env.AUDIT_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
/** Concurrent appenders to measure (`AUDIT_BENCH_APPENDERS=1,256`). */
const APPENDERS = (process.env.AUDIT_BENCH_APPENDERS ?? '1,16,256').split(',').map(Number);
/** Parts to run (`AUDIT_BENCH_PARTS=sqlite,postgres,proofs,verify`), default all. */
const PARTS = new Set(
  (process.env.AUDIT_BENCH_PARTS ?? 'sqlite,postgres,proofs,verify')
    .split(',')
    .map((p) => p.trim()),
);

function pct(sorted: number[], p: number): number {
  return sorted.length
    ? (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number)
    : 0;
}

async function startService(args: string[]): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(process.execPath, [...NODE_ARGS, MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, OTEL_SDK_DISABLED: 'true' },
  });
  const lines = createInterface({ input: child.stdout! });
  const address = await new Promise<string>((resolve, reject) => {
    lines.on('line', (line) => {
      if (line.includes('audit service ready'))
        resolve((JSON.parse(line) as { address: string }).address);
    });
    child.once('exit', (code) => reject(new Error(`audit exited ${code}`)));
  });
  return { child, address };
}

interface AppendResult {
  backend: string;
  appenders: number;
  /** Client processes the appenders were spread over. */
  clients?: number;
  records: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** CPU µs per acknowledged record: the service process, and all client processes. */
  serverCpuUsPerRecord?: number;
  clientCpuUsPerRecord?: number;
}

/** What one client process is told to do (JSON in `AUDIT_BENCH_CLIENT`). */
interface ClientJob {
  address: string;
  certPem: string;
  keyPem: string;
  caPem: string;
  appenders: number;
  /** Appender numbers start here (actor names differ between processes). */
  firstAppender: number;
  seconds: number;
  /** 0: unary Append; n > 0: AppendBatch streams of n records; -1: the append pipeline. */
  batch: number;
}

interface ClientOutcome {
  latencies: number[];
  records: number;
  errors: number;
  seconds: number;
  /** CPU time the client processes spent during the load, in µs. */
  cpuUs: number;
}

/** CPU time (user + system) a process has used so far, in µs; 0 where /proc is missing. */
function processCpuUs(pid: number | undefined): number {
  try {
    return pid === undefined ? 0 : processCpuSeconds(pid) * 1e6;
  } catch {
    return 0;
  }
}

/**
 * Client side of the append load, run in its own process: one grpc-js process cannot drive
 * 256 mTLS appenders fast enough on its own (its CPU, not the server's, caps the rate), so
 * the load is spread over several processes, each with its own connection.
 */
async function appendClient(job: ClientJob): Promise<ClientOutcome> {
  const client = createMeshClient(AuditServiceClient, {
    address: job.address,
    tls: { certPem: job.certPem, keyPem: job.keyPem, caPem: job.caPem },
    expectedServer: 'spiffe://bulwark.local/svc/audit',
    logger: pino({ level: 'silent' }),
  });
  // Connect (and finish the TLS handshake) before the clock starts.
  await new Promise<void>((resolve, reject) =>
    client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())),
  );
  const latencies: number[] = [];
  let errors = 0;
  let records = 0;
  const end = performance.now() + job.seconds * 1000;
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  const batch = Array.from({ length: job.batch }, (_, k) =>
    AuditRecord.fromPartial({
      eventType: EventType.EVENT_TYPE_AUTHZ,
      actor: { sub: `acme/user${k}`, org: 'acme' },
      action: 'infer',
      outcome: Outcome.OUTCOME_SUCCESS,
      policyRevision: 'rev-1',
    }),
  );
  // The appenders of this process share one pipeline, as the calls of one inference replica do.
  const pipeline =
    job.batch < 0
      ? promiseAuditClient(client, 5000, {
          maxInFlight: Number(process.env.AUDIT_BENCH_PIPELINE_IN_FLIGHT ?? 1),
        })
      : undefined;
  await Promise.all(
    Array.from({ length: job.appenders }, async (_, k) => {
      const a = job.firstAppender + k;
      while (performance.now() < end) {
        const t0 = performance.now();
        if (pipeline) {
          await pipeline
            .append(
              AuditRecord.fromPartial({
                id: randomUUID(),
                service: 'inference',
                eventType: EventType.EVENT_TYPE_INFERENCE,
                actor: { sub: `acme/user${a}`, org: 'acme' },
                action: 'infer',
                target: { modelName: 'iris', modelVersion: '3' },
                outcome: Outcome.OUTCOME_SUCCESS,
                latencyUs: 1234,
              }),
            )
            .then(
              () => {
                records++;
                latencies.push(performance.now() - t0);
              },
              () => errors++,
            );
          continue;
        }
        if (job.batch > 0) {
          await new Promise<void>((resolve) => {
            const stream = client.appendBatch((err) => {
              if (err) errors++;
              else {
                records += batch.length;
                latencies.push(performance.now() - t0);
              }
              resolve();
            });
            for (const record of batch) stream.write({ record });
            stream.end();
          });
          continue;
        }
        const req = AppendRequest.fromPartial({
          record: AuditRecord.fromPartial({
            service: 'inference',
            eventType: EventType.EVENT_TYPE_INFERENCE,
            actor: {
              sub: `acme/user${a}`,
              org: 'acme',
              peerSpiffeId: 'spiffe://bulwark.local/svc/gateway',
            },
            action: 'infer',
            target: { modelName: 'iris', modelVersion: '3' },
            outcome: Outcome.OUTCOME_SUCCESS,
            inputDigest: `sha256:${'ab'.repeat(32)}`,
            latencyUs: 1234,
            traceId: randomBytes(16).toString('hex'),
          }),
        });
        await new Promise<AppendResponse>((resolve, reject) =>
          client.append(req, new Metadata(), (err: ServiceError | null, res: AppendResponse) =>
            err ? reject(err) : resolve(res),
          ),
        ).then(
          () => {
            records++;
            latencies.push(performance.now() - t0);
          },
          () => errors++,
        );
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  client.close();
  return { latencies, records, errors, seconds, cpuUs: cpu.user + cpu.system };
}

/** Runs `job` spread over `processes` client processes (this file in client mode). */
async function runClients(
  job: Omit<ClientJob, 'appenders' | 'firstAppender'>,
  appenders: number,
  processes: number,
): Promise<ClientOutcome> {
  const n = Math.max(1, Math.min(processes, appenders));
  const outcomes = await Promise.all(
    Array.from({ length: n }, (_, p) => {
      const share = Math.floor(appenders / n) + (p < appenders % n ? 1 : 0);
      const firstAppender = p * Math.floor(appenders / n) + Math.min(p, appenders % n);
      const child = spawn(process.execPath, [...NODE_ARGS, import.meta.filename], {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: {
          ...process.env,
          AUDIT_BENCH_CLIENT: JSON.stringify({ ...job, appenders: share, firstAppender }),
        },
      });
      let out = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
      return new Promise<ClientOutcome>((resolve, reject) =>
        child.once('exit', (code) =>
          code === 0
            ? resolve(JSON.parse(out) as ClientOutcome)
            : reject(new Error(`bench client exited ${code}`)),
        ),
      );
    }),
  );
  return {
    latencies: outcomes.flatMap((o) => o.latencies),
    records: outcomes.reduce((a, o) => a + o.records, 0),
    errors: outcomes.reduce((a, o) => a + o.errors, 0),
    seconds: Math.max(...outcomes.map((o) => o.seconds)),
    cpuUs: outcomes.reduce((a, o) => a + o.cpuUs, 0),
  };
}

/** Records per AppendBatch stream (`AUDIT_BENCH_BATCH`, default 100). */
const BATCH = Math.max(1, Number(process.env.AUDIT_BENCH_BATCH ?? 100));

/** Client processes for the mTLS load (`AUDIT_BENCH_CLIENTS`, default 2). */
const CLIENTS = Math.max(1, Number(process.env.AUDIT_BENCH_CLIENTS ?? 2));

async function appendLoad(backend: string, storeArgs: string[]): Promise<AppendResult[]> {
  const pki = await createTestPki({ services: ['audit', 'inference'] });
  const dir = mkdtempSync(join(tmpdir(), 'audit-bench-'));
  const { child, address } = await startService([
    ...storeArgs,
    ...(process.env.AUDIT_BENCH_SERVICE_ARGS ?? '').split(' ').filter(Boolean),
    '--certs',
    pki.dir,
    '--port',
    '0',
    '--key',
    join(dir, 'k'),
    '--no-metrics',
  ]);
  const w = pki.services.inference!;
  const base = { address, certPem: w.certPem, keyPem: w.keyPem, caPem: w.caPem, seconds: SECONDS };
  const results: AppendResult[] = [];
  const summarise = (
    label: string,
    appenders: number,
    clients: number,
    o: ClientOutcome,
    serverCpuUs: number,
  ): AppendResult => {
    o.latencies.sort((x, y) => x - y);
    const perRecord = (us: number) => (o.records ? Math.round(us / o.records) : 0);
    return {
      backend: label,
      appenders,
      clients,
      records: o.records,
      seconds: Number(o.seconds.toFixed(2)),
      perSecond: Math.round(o.records / o.seconds),
      p50Ms: Number(pct(o.latencies, 50).toFixed(2)),
      p99Ms: Number(pct(o.latencies, 99).toFixed(2)),
      errors: o.errors,
      // The service's CPU over the whole step: the TLS handshakes are in it too.
      serverCpuUsPerRecord: perRecord(serverCpuUs),
      clientCpuUsPerRecord: perRecord(o.cpuUs),
    };
  };
  // Unary Append (one record per call), then AppendBatch (each appender streams BATCH records
  // and waits for the stream's acknowledgement), at every appender count.
  const steps = [
    { batch: 0, label: `${backend} Append (1 record/call)` },
    ...(process.env.AUDIT_BENCH_NO_BATCH === '1'
      ? []
      : [{ batch: BATCH, label: `${backend} AppendBatch (${BATCH} records/stream)` }]),
    { batch: -1, label: `${backend} pipeline (1 record/appender)` },
  ];
  try {
    for (const { batch, label } of steps) {
      for (const appenders of APPENDERS) {
        const clients = Math.min(CLIENTS, appenders);
        const cpu0 = processCpuUs(child.pid);
        const o = await runClients({ ...base, batch }, appenders, clients);
        results.push(summarise(label, appenders, clients, o, processCpuUs(child.pid) - cpu0));
        const r = results.at(-1)!;
        process.stderr.write(
          `  ${label}, ${appenders} appenders (${clients} client processes): ${r.perSecond} records/s p50 ${r.p50Ms} ms p99 ${r.p99Ms} ms\n`,
        );
      }
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await pki.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

/** The commit path without gRPC: concurrent `log.append` calls on an in-process log. */
async function engineLoad(backend: string, store: AuditStore): Promise<AppendResult[]> {
  const log = await openAuditLog({
    store,
    signingKey: generateKeyPairSync('ed25519').privateKey,
    origin: 'bulwark.local/audit',
    verifyOnStart: false,
  });
  const results: AppendResult[] = [];
  try {
    for (const appenders of APPENDERS) {
      const latencies: number[] = [];
      const end = performance.now() + SECONDS * 1000;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: appenders }, async (_, a) => {
          while (performance.now() < end) {
            const t0 = performance.now();
            await log.append(
              AuditRecord.fromPartial({
                eventType: EventType.EVENT_TYPE_INFERENCE,
                actor: { sub: `acme/user${a}`, org: 'acme' },
                action: 'infer',
                target: { modelName: 'iris' },
                outcome: Outcome.OUTCOME_SUCCESS,
              }),
            );
            latencies.push(performance.now() - t0);
          }
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      latencies.sort((x, y) => x - y);
      results.push({
        backend: `${backend} log.append in-process (no gRPC)`,
        appenders,
        records: latencies.length,
        seconds: Number(seconds.toFixed(2)),
        perSecond: Math.round(latencies.length / seconds),
        p50Ms: Number(pct(latencies, 50).toFixed(2)),
        p99Ms: Number(pct(latencies, 99).toFixed(2)),
        errors: 0,
      });
    }
  } finally {
    await log.close();
  }
  return results;
}

/**
 * Fills a SQLite node table for `n` synthetic leaves (no records: proofs read nodes only),
 * in the schema the store creates, with large transactions.
 */
async function buildTree(path: string, n: number): Promise<Frontier> {
  await openSqliteStore({ path }).close();
  const db = new DatabaseSync(path);
  db.exec('PRAGMA synchronous = OFF');
  const insert = db.prepare('INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)');
  let frontier = EMPTY_FRONTIER;
  const chunk = 100_000;
  const seed = randomBytes(32);
  for (let start = 0; start < n; start += chunk) {
    const hashes: Hash[] = [];
    for (let i = start; i < Math.min(n, start + chunk); i++) {
      const b = Buffer.from(seed);
      b.writeUInt32BE(i, 0);
      hashes.push(hashLeaf(b));
    }
    const step = appendToFrontier(frontier, hashes);
    db.exec('BEGIN');
    for (const node of step.nodes) insert.run(node.level, node.index, node.hash);
    db.exec('COMMIT');
    frontier = step.frontier;
  }
  db.exec(`UPDATE state SET size = ${n}`);
  db.close();
  return frontier;
}

interface ProofResult {
  leaves: number;
  inclusionUs: number;
  consistencyUs: number;
  nodesReadPerProof: number;
  buildSeconds: number;
}

async function proofTimes(n: number): Promise<ProofResult> {
  const dir = mkdtempSync(join(tmpdir(), 'audit-proof-'));
  try {
    const path = join(dir, 'tree.db');
    const t0 = performance.now();
    const frontier = await buildTree(path, n);
    const buildSeconds = (performance.now() - t0) / 1000;
    const root = frontierRoot(frontier);
    const store = openSqliteStore({ path, readOnly: true });
    const runs = 2000;
    let nodesRead = 0;
    const prove = async (ranges: ReturnType<typeof inclusionRanges>) => {
      const ids = nodesForRanges(ranges);
      nodesRead += ids.length;
      const nodes = await store.getNodes(ids);
      return ranges.map(([s, e]) => hashRange(s, e, (l, i) => nodes.get(nodeKey(l, i))));
    };
    let t = performance.now();
    for (let k = 0; k < runs; k++) {
      const m = Math.floor(Math.random() * n);
      const proof = await prove(inclusionRanges(m, n));
      if (k === 0) {
        const leaf = (await store.getNodes([{ level: 0, index: m }])).get(nodeKey(0, m))!;
        if (!verifyInclusion(leaf, m, n, proof, root))
          throw new Error('inclusion proof did not verify');
      }
    }
    const inclusionUs = ((performance.now() - t) * 1000) / runs;
    const incNodes = nodesRead / runs;
    t = performance.now();
    for (let k = 0; k < runs; k++) {
      const m = 1 + Math.floor(Math.random() * (n - 1));
      const proof = await prove(consistencyRanges(m, n));
      if (k === 0) {
        const ids = nodesForRanges([[0, m]]);
        const nodes = await store.getNodes(ids);
        const r1 = hashRange(0, m, (l, i) => nodes.get(nodeKey(l, i)));
        if (!verifyConsistency(m, n, r1, root, proof))
          throw new Error('consistency proof did not verify');
      }
    }
    const consistencyUs = ((performance.now() - t) * 1000) / runs;
    await store.close();
    return {
      leaves: n,
      inclusionUs: Math.round(inclusionUs),
      consistencyUs: Math.round(consistencyUs),
      nodesReadPerProof: Math.round(incNodes),
      buildSeconds: Number(buildSeconds.toFixed(1)),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface VerifySpeed {
  leaves: number;
  /** This thread and one worker (the default for big logs on two cores). */
  seconds: number;
  leavesPerSecond: number;
  cpuUsPerLeaf: number;
  /** The same chunked verifier on this thread alone. */
  oneThreadLeavesPerSecond: number;
  oneThreadCpuUsPerLeaf: number;
  /** The careful leaf-by-leaf verifier (`parallel: false`, also the fallback for bad chunks). */
  serialLeavesPerSecond: number;
}

async function verifySpeed(n: number): Promise<VerifySpeed> {
  const dir = mkdtempSync(join(tmpdir(), 'audit-verify-'));
  try {
    const store = openSqliteStore({ path: join(dir, 'v.db') });
    const key = generateKeyPairSync('ed25519').privateKey;
    const log = await openAuditLog({
      store,
      signingKey: key,
      origin: 'bulwark.local/audit',
      verifyOnStart: false,
      maxBatch: 10_000,
    });
    const batch = 10_000;
    for (let i = 0; i < n; i += batch) {
      await log.appendMany(
        Array.from({ length: Math.min(batch, n - i) }, (_, k) =>
          AuditRecord.fromPartial({
            id: `v${i + k}`,
            eventType: EventType.EVENT_TYPE_AUTHZ,
            actor: { sub: 'acme/alice', org: 'acme' },
            action: 'infer',
            outcome: Outcome.OUTCOME_SUCCESS,
            policyRevision: 'rev-1',
          }),
        ),
      );
    }
    await log.checkpoint();
    const verifier = parseVerifierKey(log.verifierKey);
    // Three ways: chunks hashed on this thread and a worker (the worker only pays off when the
    // second core is free), on this thread alone, and the careful leaf-by-leaf verifier. Best of
    // a few runs each; CPU time counts every thread of this process.
    const timed = async (parallel: boolean, workers?: number) => {
      let best = { seconds: Infinity, cpuUs: 0 };
      for (let run = 0; run < 3; run++) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const result = await verifyStore(store, {
          verifier,
          origin: 'bulwark.local/audit',
          parallel,
          ...(workers !== undefined ? { workers } : {}),
        });
        const seconds = (performance.now() - t0) / 1000;
        const c = process.cpuUsage(c0);
        if (!result.ok) throw new Error(`verify failed: ${result.reason}`);
        if (seconds < best.seconds) best = { seconds, cpuUs: c.user + c.system };
      }
      return best;
    };
    const both = await timed(true);
    const one = await timed(true, 0);
    const serial = await timed(false);
    await log.close();
    return {
      leaves: n,
      seconds: Number(both.seconds.toFixed(2)),
      leavesPerSecond: Math.round(n / both.seconds),
      cpuUsPerLeaf: Number((both.cpuUs / n).toFixed(2)),
      oneThreadLeavesPerSecond: Math.round(n / one.seconds),
      oneThreadCpuUsPerLeaf: Number((one.cpuUs / n).toFixed(2)),
      serialLeavesPerSecond: Math.round(n / serial.seconds),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<BenchReport> {
  const loadAtStart = loadavg()[0] ?? 0;
  const appends: AppendResult[] = [];
  if (PARTS.has('sqlite')) {
    const sqliteDir = mkdtempSync(join(tmpdir(), 'audit-bench-db-'));
    try {
      appends.push(...(await appendLoad('sqlite', ['--sqlite', join(sqliteDir, 'a.db')])));
      appends.push(
        ...(await engineLoad('sqlite', openSqliteStore({ path: join(sqliteDir, 'e.db') }))),
      );
    } finally {
      rmSync(sqliteDir, { recursive: true, force: true });
    }
  }
  if (PARTS.has('postgres')) {
    const pgi = await startPostgres({ durable: true });
    try {
      appends.push(...(await appendLoad('postgres', ['--postgres', pgi.url])));
      appends.push(
        ...(await engineLoad(
          'postgres',
          await openPostgresStore({ connectionString: pgi.url, schema: 'engine' }),
        )),
      );
    } finally {
      await pgi.stop();
    }
  }
  const sizes = PARTS.has('proofs')
    ? [10_000, 1_000_000, ...(process.env.AUDIT_BENCH_HUGE === '1' ? [10_000_000] : [])]
    : [];
  const proofs: ProofResult[] = [];
  for (const n of sizes) {
    process.stderr.write(`  proofs at ${n} leaves\n`);
    proofs.push(await proofTimes(n));
  }
  const verify = PARTS.has('verify')
    ? await verifySpeed(Number(process.env.AUDIT_BENCH_VERIFY_LEAVES ?? 500_000))
    : undefined;
  const text = [
    `durable appends: over mTLS (service in its own process; appenders spread over up to ${CLIENTS}`,
    'client processes, one connection each), and the',
    'in-process commit path without gRPC; load average at start: ' + loadAtStart.toFixed(1),
    'latency: per call for Append, per stream acknowledgement for AppendBatch, per record for',
    'the pipeline (one Append on the wire per client process, the rest gathered into AppendBatch); every',
    'acknowledgement is durable (SQLite synchronous=FULL, PostgreSQL fsync + synchronous_commit).',
    'backend and call                                appenders  records/s  p50 ms  p99 ms  errors  cpu µs/rec server/clients',
    ...appends.map(
      (r) =>
        `${r.backend.padEnd(47)} ${String(r.appenders).padStart(9)}  ${String(r.perSecond).padStart(9)}  ${r.p50Ms.toFixed(2).padStart(6)}  ${r.p99Ms.toFixed(2).padStart(6)}  ${String(r.errors).padStart(6)}` +
        (r.serverCpuUsPerRecord !== undefined
          ? `  ${r.serverCpuUsPerRecord}/${r.clientCpuUsPerRecord}`
          : ''),
    ),
    '',
    'proofs from the stored node table (SQLite, random leaves, mean of 2000):',
    'leaves      inclusion µs  consistency µs  nodes read',
    ...proofs.map(
      (p) =>
        `${String(p.leaves).padEnd(11)} ${String(p.inclusionUs).padStart(12)}  ${String(p.consistencyUs).padStart(14)}  ${String(p.nodesReadPerProof).padStart(10)}`,
    ),
    '',
    ...(verify
      ? [
          `offline verify (SQLite, ${verify.leaves} leaves, best of 3): ${verify.leavesPerSecond} leaves/s` +
            ` on this thread + 1 worker (${verify.seconds} s, ${verify.cpuUsPerLeaf} µs CPU/leaf);` +
            ` ${verify.oneThreadLeavesPerSecond} leaves/s on one thread (${verify.oneThreadCpuUsPerLeaf} µs CPU/leaf);` +
            ` leaf by leaf: ${verify.serialLeavesPerSecond} leaves/s`,
        ]
      : []),
  ].join('\n');
  return {
    title: 'audit: durable appends, proof cost, offline verification',
    text,
    data: { appends, proofs, verify },
  };
}

// Client mode: this file run as a child by `runClients` (never when imported by `bench/run.ts`).
if (process.env.AUDIT_BENCH_CLIENT && process.argv[1] === import.meta.filename) {
  const outcome = await appendClient(JSON.parse(process.env.AUDIT_BENCH_CLIENT) as ClientJob);
  // A pipe is written asynchronously: exit only once the whole outcome is out (it can be
  // hundreds of kilobytes of latencies).
  process.stdout.write(JSON.stringify(outcome), () => process.exit(0));
}
