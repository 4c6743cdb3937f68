/**
 * Policy benchmark.
 *
 * 1. In-process decisions per second at 100, 10,000 and 100,000 rules across 1,000
 *    organisations: uncached (indexed engine), cached (decision cache, warm), and the plain
 *    Casbin enforcer over the same model and rows (it scans every rule; run for a bounded time).
 * 2. Envoy ext_authz `Check` over mTLS against a policy service in a child process, open loop at
 *    a fixed 1,000 and 5,000 requests/s: p50 / p99 / p99.9 latency measured by the caller.
 *    Identity comes from jwt_authn metadata, as with Envoy's jwt_authn filter in front. The caller sends pre-encoded requests over `node:http2` (as
 *    Envoy, a C++ proxy, pays no JavaScript encoding cost), and the server's and the load
 *    generator's CPU per Check are reported besides. Three servers take the same load: the
 *    policy service on the mesh kit, the policy service on grpc-js's own TLS server, and a
 *    floor: a bare `node:http2` mTLS server answering one pre-encoded OK, which shows the
 *    latency this machine, its runtime and the caller add before any gRPC or policy work.
 *
 * Knobs: BENCH_SECONDS (seconds per rate, default 5), BENCH_INPROC_MS (per measurement,
 * default 1000).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createSecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { pino } from 'pino';
import { createTestPki } from '../mesh/ca/testing.ts';
import { createMeshServer, type TlsFiles } from '../mesh/kit/index.ts';
import {
  compilePolicy,
  createPolicyEngine,
  createPolicyService,
  createReferenceEnforcer,
  PolicyStore,
  type DecisionRequest,
  type LoadedPolicy,
  type PolicySource,
} from '../services/policy/index.ts';
import { jsonToStruct, loadEnvoyAuthorization } from '../services/policy/envoy-protos.ts';
import type { CheckResponse } from '../services/policy/ext-authz.ts';
import type { BenchReport } from './run.ts';
import { ownCpuSeconds, processCpuSeconds } from './support/cpu.ts';
import { connectRawGrpc, grpcFrame, type RawGrpcCaller } from './support/raw-grpc.ts';

const ORGS = 1000;
const SIZES = [100, 10_000, 100_000];
const modelText = readFileSync(new URL('../policy/model.conf', import.meta.url), 'utf8');
const quiet = pino({ level: 'silent' });
const ISSUER = 'https://id.bulwark.bench';

/** A synthetic policy: per organisation roles, model rules, prefix patterns and a deny. */
function syntheticPolicy(rules: number): LoadedPolicy {
  const perOrg = Math.max(1, Math.floor(rules / ORGS));
  const out: Record<string, unknown>[] = [];
  const organisations: Record<
    string,
    { roles: Record<string, string[]>; members: Record<string, string[]> }
  > = {};
  for (let i = 0; out.length < rules; i += 1) {
    const org = `org${i % ORGS}`;
    organisations[org] ??= {
      roles: { 'senior-analyst': ['analyst'] },
      members: { [`${org}/u0`]: ['senior-analyst'], [`${org}/u1`]: ['analyst'] },
    };
    const k = Math.floor(i / ORGS);
    const kind = k % 4;
    out.push({
      id: `r${i}`,
      effect: kind === 3 ? 'deny' : 'allow',
      subject: kind === 1 ? 'senior-analyst' : 'analyst',
      org,
      object: kind === 2 ? `model:fraud-${k}-*` : `model:m${k % Math.max(perOrg, 1)}`,
      action: 'infer',
      ...(kind === 0
        ? {}
        : kind === 3
          ? { when: 'batch_size > 512' }
          : { when: "acr == 'mfa' || certificate_bound" }),
    });
  }
  const models = Object.fromEntries(
    Array.from({ length: Math.max(perOrg, 1) }, (_, k) => [`m${k}`, { risk: 'low' }]),
  );
  return { modelText, policy: compilePolicy({ version: 1, models, organisations, rules: out }) };
}

function requests(count: number, rules: number): DecisionRequest[] {
  const perOrg = Math.max(1, Math.floor(rules / ORGS));
  return Array.from({ length: count }, (_, i) => {
    const org = `org${(i * 7919) % ORGS}`;
    return {
      subject: `${org}/u${i % 3}`,
      org,
      object: i % 5 === 0 ? `model:fraud-${i % 7}-x` : `model:m${i % perOrg}`,
      action: 'infer',
      attributes: { acr: i % 2 ? 'mfa' : 'pwd', batch_size: i % 1024, certificate_bound: false },
    };
  });
}

function rate(fn: (i: number) => unknown, ms: number): { perSecond: number; calls: number } {
  const end = performance.now() + ms;
  let calls = 0;
  const start = performance.now();
  while (performance.now() < end) {
    for (let j = 0; j < 100; j += 1) fn(calls++);
  }
  return { perSecond: Math.round((calls / (performance.now() - start)) * 1000), calls };
}

async function inProcess(ms: number) {
  const rows: Record<string, unknown>[] = [];
  for (const size of SIZES) {
    const t0 = performance.now();
    const loaded = syntheticPolicy(size);
    const engine = createPolicyEngine({ ...loaded });
    const loadMs = Math.round(performance.now() - t0);
    const distinct = requests(1000, size);
    const many = requests(50_000, size).map((r, i) => ({
      ...r,
      attributes: { ...r.attributes, batch_size: i },
    }));
    const uncached = rate((i) => engine.decide(many[i % many.length]!), ms);
    const source: PolicySource = {
      name: 'bench',
      load: async () => loaded,
      watch: () => () => undefined,
    };
    const store = new PolicyStore(engine, {
      source,
      logger: quiet,
      now: () => new Date(),
      cacheSize: 100_000,
    });
    for (const r of distinct) store.decide(r);
    const cached = rate((i) => store.decide(distinct[i % distinct.length]!), ms);
    const allowed = distinct.filter((r) => engine.decide(r).allowed).length;
    // The plain Casbin enforcer: every rule is matched per request.
    const enforcer = await createReferenceEnforcer(loaded.modelText, loaded.policy);
    let casbinCalls = 0;
    const c0 = performance.now();
    while (performance.now() - c0 < ms && casbinCalls < 20_000) {
      const n = engine.normalize(distinct[casbinCalls % distinct.length]!);
      await enforcer.enforce(n.subject, n.org, n.object, n.action, n.attributes);
      casbinCalls += 1;
    }
    const casbinMs = (performance.now() - c0) / casbinCalls;
    const casbinPerSecond = Math.round((1000 / casbinMs) * 10) / 10;
    rows.push({
      rules: size,
      loadMs,
      uncached: uncached.perSecond,
      cached: cached.perSecond,
      casbin: casbinPerSecond,
      casbinMsPerDecision: Math.round(casbinMs * 100) / 100,
      allowedShare: allowed / distinct.length,
    });
    process.stderr.write(
      `  ${size} rules: uncached ${uncached.perSecond}/s, cached ${cached.perSecond}/s, casbin scan ${casbinPerSecond}/s\n`,
    );
  }
  return rows;
}

const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';

/** Encoded Check requests as Envoy would send them: jwt_authn identity, the gateway peer. */
function checkFrames(count: number): Buffer[] {
  const method = loadEnvoyAuthorization().service.Check!;
  const exp = Math.floor(Date.now() / 1000) + 3600;
  return Array.from({ length: count }, (_, i) =>
    grpcFrame(
      method.requestSerialize({
        attributes: {
          source: {
            address: { socketAddress: { address: '10.1.0.1' } },
            principal: 'spiffe://bulwark.local/svc/gateway',
          },
          request: {
            http: {
              method: 'POST',
              path: '/inference.GRPCInferenceService/ModelInfer',
              headers: { 'x-bulwark-model': 'iris' },
            },
          },
          metadataContext: {
            filterMetadata: {
              'envoy.filters.http.jwt_authn': jsonToStruct({
                jwt_payload: {
                  sub: `acme/user${i}`,
                  org: 'acme',
                  roles: ['analyst'],
                  iss: ISSUER,
                  aud: 'urn:bulwark:inference',
                  exp,
                },
              }),
            },
          },
        },
      }) as Buffer,
    ),
  );
}

/** Closed loop: `inFlight` calls outstanding at all times, for the server's capacity. */
async function closedLoop(caller: RawGrpcCaller, inFlight: number, seconds: number) {
  const frames = checkFrames(64);
  const end = performance.now() + seconds * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < end) {
        await new Promise<void>((resolve) =>
          caller.call(CHECK_PATH, frames[done % frames.length]!, () => resolve()),
        );
        done += 1;
      }
    }),
  );
  return { perSecond: Math.round(done / seconds), requests: done };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/**
 * Open loop at a fixed rate: requests leave on a 1 ms schedule whatever the answers do, so
 * queueing in the server shows in the latency. Latency runs from the moment a request is
 * written. Every answer is decoded and its status checked.
 */
async function openLoop(caller: RawGrpcCaller, perSecond: number, seconds: number) {
  const decode = loadEnvoyAuthorization().service.Check!.responseDeserialize as (
    b: Buffer,
  ) => CheckResponse;
  const frames = checkFrames(64);
  const latencies: number[] = [];
  let sent = 0;
  let failed = 0;
  let notOk = 0;
  const total = perSecond * seconds;
  const start = performance.now();
  await new Promise<void>((resolve) => {
    let done = 0;
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * perSecond));
      while (sent < due) {
        const sentAt = performance.now();
        caller.call(CHECK_PATH, frames[sent % frames.length]!, (status, body) => {
          if (status !== 0) failed += 1;
          else if (decode(body).status.code !== 0) notOk += 1;
          latencies.push(performance.now() - sentAt);
          done += 1;
          if (done === total) resolve();
        });
        sent += 1;
      }
      if (sent < total) setTimeout(tick, 0);
    };
    tick();
  });
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const us = (ms: number) => Math.round(ms * 1000);
  return {
    targetPerSecond: perSecond,
    achievedPerSecond: Math.round(total / elapsed),
    requests: total,
    failed,
    notOk,
    p50us: us(percentile(latencies, 50)),
    p99us: us(percentile(latencies, 99)),
    p999us: us(percentile(latencies, 99.9)),
    maxUs: us(latencies.at(-1) ?? NaN),
  };
}

/** Child process: a policy service on the mesh serving ext_authz. */
async function serve(): Promise<void> {
  const tls = JSON.parse(process.env.BENCH_TLS!) as TlsFiles;
  if (process.env.BENCH_MODE === 'floor') {
    // The floor of this machine and runtime: a bare `node:http2` mTLS server that answers every
    // Check with one pre-encoded OK, no grpc-js and no policy. Whatever latency it shows under the
    // same caller is not the policy service's to remove.
    const ok = grpcFrame(
      loadEnvoyAuthorization().service.Check!.responseSerialize({ status: { code: 0 } }) as Buffer,
    );
    const server = createSecureServer({
      ca: readFileSync(tls.caFile),
      cert: readFileSync(tls.certFile),
      key: readFileSync(tls.keyFile),
      requestCert: true,
      rejectUnauthorized: true,
    });
    server.on('stream', (stream) => {
      stream.on('data', () => undefined);
      stream.on('end', () => {
        stream.respond(
          { ':status': 200, 'content-type': 'application/grpc' },
          { waitForTrailers: true },
        );
        stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(ok);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    process.stdout.write(`READY ${(server.address() as AddressInfo).port}\n`);
    process.on('SIGTERM', () => server.close(() => process.exit(0)));
    return;
  }
  const root = fileURLToPath(new URL('../policy/', import.meta.url));
  const { createFileSource } = await import('../services/policy/index.ts');
  const { createLocalJWKSet } = await import('jose');
  const policy = await createPolicyService({
    source: createFileSource({ modelPath: `${root}model.conf`, policyPath: `${root}policy.yaml` }),
    logger: quiet,
    watch: false,
    tokens: {
      issuer: ISSUER,
      audience: 'urn:bulwark:inference',
      keys: createLocalJWKSet({ keys: [] }),
    },
  });
  if (process.env.BENCH_MODE === 'native') {
    // grpc-js's own TLS with required client certificates, to separate the transport's cost
    // from the policy service's.
    const server = new Server();
    policy.addTo(server);
    const creds = ServerCredentials.createSsl(
      readFileSync(tls.caFile),
      [{ cert_chain: readFileSync(tls.certFile), private_key: readFileSync(tls.keyFile) }],
      true,
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))),
    );
    process.stdout.write(`READY ${port}\n`);
    process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
    return;
  }
  const server = createMeshServer({ tls, allowedPeers: [process.env.BENCH_PEER!], logger: quiet });
  policy.addTo(server);
  const { port } = await server.listen();
  process.stdout.write(`READY ${port}\n`);
  process.on('SIGTERM', () => void server.shutdown(500).then(() => process.exit(0)));
}

type ServerMode = 'kit' | 'native' | 'floor';

const SERVER_NAMES: Record<ServerMode, string> = {
  kit: 'mesh kit (createMeshServer)',
  native: 'grpc-js native mTLS',
  floor: 'floor: bare node:http2 mTLS',
};

async function extAuthz(seconds: number, mode: ServerMode) {
  const pki = await createTestPki({ services: ['policy', 'gateway'] });
  const flags = process.env.BENCH_SERVER_NODE_FLAGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...flags, fileURLToPath(import.meta.url), 'serve'], {
    env: {
      ...process.env,
      BENCH_MODE: mode,
      BENCH_TLS: JSON.stringify(pki.services.policy),
      BENCH_PEER: pki.services.gateway!.spiffeId,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let buf = '';
      child.stdout!.on('data', (d: Buffer) => {
        buf += String(d);
        const m = /READY (\d+)/.exec(buf);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`policy server exited with ${code}`)));
    });
    const caller = await connectRawGrpc(
      `127.0.0.1:${port}`,
      pki.services.gateway!,
      pki.services.policy!.spiffeId,
    );
    await openLoop(caller, 500, 2); // warm up: connection, JIT, decision cache
    const serverCpu0 = processCpuSeconds(child.pid!);
    const ownCpu0 = ownCpuSeconds();
    const capacity = await closedLoop(caller, 64, 3);
    const cpuUs = (seconds: number) => Math.round((seconds * 1e6) / capacity.requests);
    const serverUsPerCheck = cpuUs(processCpuSeconds(child.pid!) - serverCpu0);
    const loadUsPerCheck = cpuUs(ownCpuSeconds() - ownCpu0);
    process.stderr.write(
      `  ext_authz (${mode}) capacity, 64 in flight: ${capacity.perSecond}/s; CPU per Check: server ${serverUsPerCheck} µs, load generator ${loadUsPerCheck} µs\n`,
    );
    const results = [];
    for (const perSecond of [1000, 5000]) {
      const r = await openLoop(caller, perSecond, seconds);
      process.stderr.write(
        `  ext_authz (${mode}) ${perSecond}/s: p50 ${r.p50us} µs, p99 ${r.p99us} µs, p99.9 ${r.p999us} µs\n`,
      );
      results.push({
        server: SERVER_NAMES[mode],
        capacityPerSecond: capacity.perSecond,
        serverUsPerCheck,
        loadUsPerCheck,
        ...r,
      });
    }
    caller.close();
    return results;
  } finally {
    child.kill('SIGTERM');
    await pki.cleanup();
  }
}

/** The issue's latency targets against what the kit and the floor achieved. */
function targetLine(rows: { server: string; targetPerSecond: number; p99us: number }[]): string {
  const limits = new Map([
    [1000, 1000],
    [5000, 5000],
  ]);
  const describe = (server: string) =>
    rows
      .filter((r) => r.server === server)
      .map((r) => {
        const limit = limits.get(r.targetPerSecond) ?? Infinity;
        const verdict = r.p99us <= limit ? 'met' : 'NOT met';
        return `${r.targetPerSecond}/s p99 ${(r.p99us / 1000).toFixed(1)} ms (${verdict})`;
      })
      .join(', ');
  return [
    'targets: p99 <= 1 ms at 1,000/s and <= 5 ms at 5,000/s',
    `  ${SERVER_NAMES.kit}: ${describe(SERVER_NAMES.kit)}`,
    `  ${SERVER_NAMES.floor}: ${describe(SERVER_NAMES.floor)}`,
  ].join('\n');
}

export async function run(): Promise<BenchReport> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 5);
  const ms = Number(process.env.BENCH_INPROC_MS ?? 1000);
  // ext_authz first: the in-process part leaves this process with a large heap (100,000 rules
  // twice over), whose collections would stall the load generator and show up as latency.
  const check = [
    ...(await extAuthz(seconds, 'kit')),
    ...(await extAuthz(seconds, 'native')),
    ...(await extAuthz(seconds, 'floor')),
  ];
  const inproc = await inProcess(ms);
  const text = [
    'in-process decisions/s (1,000 organisations)',
    'rules     load ms   uncached/s   cached/s   casbin-scan/s',
    ...inproc.map((r) =>
      [
        String(r.rules).padEnd(9),
        String(r.loadMs).padStart(7),
        String(r.uncached).padStart(12),
        String(r.cached).padStart(10),
        String(r.casbin).padStart(15),
      ].join(' '),
    ),
    '',
    'ext_authz Check over mTLS, open loop (jwt_authn metadata identity, cached decisions)',
    'server                       capacity/s  srv µs/Check  target/s  achieved/s   p50 µs   p99 µs   p99.9 µs   max µs   errors',
    ...check.map((r) =>
      [
        r.server.padEnd(28),
        String(r.capacityPerSecond).padStart(10),
        String(r.serverUsPerCheck).padStart(13),
        String(r.targetPerSecond).padEnd(9),
        String(r.achievedPerSecond).padStart(10),
        String(r.p50us).padStart(8),
        String(r.p99us).padStart(8),
        String(r.p999us).padStart(10),
        String(r.maxUs).padStart(8),
        String(r.failed + r.notOk).padStart(8),
      ].join(' '),
    ),
    '',
    targetLine(check),
  ].join('\n');
  return {
    title: 'Policy decisions: in-process and Envoy ext_authz over mTLS',
    text,
    data: { inProcess: inproc, extAuthz: check },
  };
}

if (process.argv[2] === 'serve') await serve();
