/**
 * Foundation benchmark: an echo-sized unary call between two processes (a server and a load
 * client), over plaintext gRPC, plaintext with telemetry, the mesh kit's mTLS, and mTLS with
 * telemetry (server and client interceptors, every call traced, spans batched to a JSON-lines
 * file, Prometheus metrics). Variants run interleaved in rounds so machine noise hits them alike,
 * each round with fresh server and client processes.
 *
 * Reported per variant: throughput and p50/p99 latency (wall clock), and CPU time per call of
 * the server and of the client process over the measured window (after each round's 1 s
 * warm-up), each as a ratio to plaintext. On a busy machine the
 * wall-clock ratio mostly measures the neighbours; the CPU ratio is what a CPU-bound server would
 * keep. Target: mTLS+telemetry keeps >= 85% of plaintext throughput. The row
 * `mtls+telemetry-floor` is the least any conforming mTLS+telemetry does per call (see
 * `support/trace-floor.ts`); no design keeps more of plaintext than it does, and the report
 * says whether even the floor reached the target.
 *
 * Knobs: BENCH_SECONDS (measured seconds per variant, default 16), BENCH_ROUNDS (default 8:
 * the machine's speed can drift by 2x within a minute, and short interleaved windows keep the
 * variants comparable), BENCH_CONCURRENCY (calls in flight, default 32), BENCH_VARIANTS (comma
 * list of variants to run; `plaintext` is always run, as the baseline), BENCH_CHILD_FLAGS (extra Node flags for the
 * server and load processes, e.g. `--max-semi-space-size=16`), BENCH_CPU_PROFILE (a directory:
 * each server and load process writes a `.cpuprofile` of the measured window only, without
 * start-up and warm-up, named `<role>-<variant>-<pid>-<n>.cpuprofile`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials, Metadata, Server, ServerCredentials, type ServiceError } from '@grpc/grpc-js';
import {
  EchoServiceClient,
  EchoServiceService,
  type EchoRequest,
  type EchoResponse,
} from '../gen/bulwark/echo/v1/echo.ts';
import { ParentBasedSampler, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base';
import { createTestPki } from '../mesh/ca/testing.ts';
import {
  createMeshClient,
  createMeshServer,
  MESH_GRPC_OPTIONS,
  unaryHandler,
  type TlsFiles,
} from '../mesh/kit/index.ts';
import { createLogger, createTelemetry, type Telemetry } from '../mesh/telemetry/index.ts';
import type { BenchReport } from './run.ts';
import {
  floorCall,
  floorClientCredentials,
  floorHandler,
  floorServerCredentials,
} from './support/trace-floor.ts';

// `plaintext+deadline` gives every plaintext call the deadline the kit gives every call (10 s,
// as a call option: no interceptor), so the cost of deadlines is told apart from that of mTLS;
// `plaintext+telemetry` isolates the cost of telemetry from the cost of mTLS; `grpc-mtls` is
// grpc-js's own mutual TLS with the same certificates and no kit (no peer allow-list, no
// default deadline, no certificate reloading): the cost of mTLS itself in this runtime;
// `mtls+telemetry-10%` samples one trace in ten (parent-based, as a production setting would),
// while still propagating trace context and counting every call; `mtls+telemetry-floor` is the
// least any conforming mTLS+telemetry can cost (see `support/trace-floor.ts`): grpc-js's own
// mTLS, a deadline, a recorded span per call on each side that is then dropped, bare metrics.
const VARIANTS = [
  'plaintext',
  'plaintext+deadline',
  'plaintext+telemetry',
  'grpc-mtls',
  'mtls',
  'mtls+telemetry',
  'mtls+telemetry-10%',
  'mtls+telemetry-floor',
] as const;
type Variant = (typeof VARIANTS)[number];

interface ChildOptions {
  role: 'server' | 'load';
  variant: Variant;
  tls: TlsFiles;
  peerId: string;
  traceFile: string;
  address?: string;
  warmupMs?: number;
  durationMs?: number;
  concurrency?: number;
}

/** What one load run measured. */
interface LoadResult {
  calls: number;
  errors: number;
  seconds: number;
  /** Latencies in ms, for merging rounds. */
  latencies: number[];
  /** CPU time of the load process while measuring. */
  clientCpuMicros: number;
}

/** Per-variant totals over all rounds. */
interface Totals extends LoadResult {
  /** CPU time of the server process, and the calls it served, over the load runs. */
  serverCpuMicros: number;
  serverCalls: number;
}

const MESSAGE = 'x'.repeat(64);
const SELF = fileURLToPath(import.meta.url);

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * Starts the V8 CPU profiler when BENCH_CPU_PROFILE names a directory; the returned function
 * stops it and writes the profile there.
 */
async function startProfile(options: ChildOptions): Promise<() => Promise<void>> {
  const dir = process.env['BENCH_CPU_PROFILE'];
  if (!dir) return async () => {};
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    profileCount += 1;
    const name = `${options.role}-${options.variant}-${process.pid}-${profileCount}.cpuprofile`;
    writeFileSync(join(dir, name), JSON.stringify(profile));
    session.disconnect();
  };
}
let profileCount = 0;

function telemetryFor(options: ChildOptions, name: string): Telemetry | undefined {
  if (!options.variant.includes('+telemetry') || options.variant.endsWith('-floor')) {
    return undefined;
  }
  return createTelemetry({
    serviceName: name,
    traceFile: options.traceFile,
    env: {},
    ...(options.variant.endsWith('-10%')
      ? { sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0.1) }) }
      : {}),
  });
}

async function serve(options: ChildOptions): Promise<void> {
  const logger = createLogger({
    service: 'bench-echo',
    level: 'warn',
    destination: process.stderr,
  });
  const telemetry = telemetryFor(options, 'bench-server');
  let handled = 0;
  const echo = unaryHandler<EchoRequest, EchoResponse>((call) => {
    handled += 1;
    return { message: call.request.message, servers: [] };
  });
  let port: number;
  let stop: () => Promise<void>;
  if (options.variant.startsWith('plaintext')) {
    // Same grpc-js options as a mesh server, so plaintext differs from mTLS only by TLS and the
    // kit's interceptors.
    const server = new Server({
      ...MESH_GRPC_OPTIONS,
      interceptors: telemetry ? [telemetry.serverInterceptor] : [],
    });
    server.addService(EchoServiceService, { echo });
    if (telemetry) await telemetry.serveMetrics({ port: 0 });
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    stop = () => new Promise((resolve) => server.tryShutdown(() => resolve()));
  } else if (options.variant === 'grpc-mtls' || options.variant === 'mtls+telemetry-floor') {
    const server = new Server(MESH_GRPC_OPTIONS);
    server.addService(EchoServiceService, {
      echo:
        options.variant === 'grpc-mtls'
          ? echo
          : floorHandler(EchoServiceService.echo.path, echo).handler,
    });
    const { certFile, keyFile, caFile } = options.tls;
    const creds = floorServerCredentials(
      readFileSync(caFile),
      readFileSync(certFile),
      readFileSync(keyFile),
    );
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))),
    );
    stop = () => new Promise((resolve) => server.tryShutdown(() => resolve()));
  } else {
    const server = createMeshServer({
      tls: options.tls,
      allowedPeers: [options.peerId],
      logger,
      interceptors: telemetry ? [telemetry.serverInterceptor] : [],
    });
    server.addService(EchoServiceService, { echo });
    ({ port } = await server.listen());
    if (telemetry) await telemetry.serveMetrics({ port: 0 });
    stop = () => server.shutdown(1000);
  }
  process.stdout.write(JSON.stringify({ port }) + '\n');
  const exit = async () => {
    await stop();
    await telemetry?.shutdown();
    process.exit(0);
  };
  process.stdin.on('end', () => void exit());
  // Each line on stdin asks for the CPU time used and calls handled so far.
  // Between the two requests of a load run, the measured window may be profiled.
  let pending = '';
  let stopProfile: (() => Promise<void>) | undefined;
  process.stdin.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n')) {
      pending = pending.slice(newline + 1);
      const cpu = process.cpuUsage();
      process.stdout.write(JSON.stringify({ cpuMicros: cpu.user + cpu.system, handled }) + '\n');
      if (stopProfile) {
        void stopProfile();
        stopProfile = undefined;
      } else {
        void startProfile(options).then((stop) => (stopProfile = stop));
      }
    }
  });
}

async function load(options: ChildOptions): Promise<void> {
  const logger = createLogger({
    service: 'bench-load',
    level: 'warn',
    destination: process.stderr,
  });
  const telemetry = telemetryFor(options, 'bench-client');
  const address = options.address!;
  const { certFile, keyFile, caFile } = options.tls;
  const client = options.variant.startsWith('plaintext')
    ? new EchoServiceClient(address, credentials.createInsecure(), {
        ...MESH_GRPC_OPTIONS,
        interceptors: telemetry ? [telemetry.clientInterceptor] : [],
      })
    : options.variant === 'grpc-mtls' || options.variant === 'mtls+telemetry-floor'
      ? new EchoServiceClient(
          address,
          // The server's certificate names a SPIFFE ID, not a host: the chain is still checked.
          floorClientCredentials(
            readFileSync(caFile),
            readFileSync(keyFile),
            readFileSync(certFile),
          ),
          // As the kit does on loopback: TLS may not name a server by its IP address.
          { ...MESH_GRPC_OPTIONS, 'grpc.ssl_target_name_override': 'localhost' },
        )
      : createMeshClient(EchoServiceClient, {
          address,
          tls: options.tls,
          expectedServer: options.peerId,
          logger,
          interceptors: telemetry ? [telemetry.clientInterceptor] : [],
        });
  const withDeadline = options.variant === 'plaintext+deadline';
  const floor =
    options.variant === 'mtls+telemetry-floor'
      ? floorCall(EchoServiceService.echo.path, client.echo.bind(client))
      : undefined;
  const request = { message: MESSAGE, forwardTo: '' };
  // Each variant's call makes one promise, as the floor's does.
  const call: () => Promise<unknown> = floor
    ? () => floor(request)
    : () =>
        new Promise<void>((resolve, reject) => {
          const done = (err: ServiceError | null) => (err ? reject(err) : resolve());
          if (withDeadline)
            client.echo(request, new Metadata(), { deadline: Date.now() + 10_000 }, done);
          else client.echo(request, done);
        });
  const latencies: number[] = [];
  let errors = 0;
  const begin = performance.now();
  const measureFrom = begin + (options.warmupMs ?? 1000);
  const end = measureFrom + (options.durationMs ?? 5000);
  let cpuAtStart = process.cpuUsage();
  let stopProfile = async () => {};
  setTimeout(() => {
    void startProfile(options).then((stop) => (stopProfile = stop));
    cpuAtStart = process.cpuUsage();
    // The parent reads the server's CPU time now: both sides measure the same window.
    process.stdout.write(JSON.stringify({ measuring: true }) + '\n');
  }, measureFrom - begin);
  const worker = async () => {
    for (;;) {
      const t0 = performance.now();
      if (t0 >= end) return;
      try {
        await call();
        if (t0 >= measureFrom) latencies.push(performance.now() - t0);
      } catch {
        errors += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 32 }, worker));
  const seconds = (performance.now() - measureFrom) / 1000;
  const cpu = process.cpuUsage(cpuAtStart);
  await stopProfile();
  client.close();
  await telemetry?.shutdown();
  const result: LoadResult = {
    calls: latencies.length,
    errors,
    seconds,
    latencies,
    clientCpuMicros: cpu.user + cpu.system,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

/** A child process of this file, read one JSON line at a time. */
interface Child {
  process: ChildProcess;
  /** The next JSON line the child prints. */
  next<T>(): Promise<T>;
}

/** Spawns this file in a child role. */
function child(options: ChildOptions): Child {
  const flags = (process.env['BENCH_CHILD_FLAGS'] ?? '').split(' ').filter(Boolean);
  const proc = spawn(process.execPath, [...flags, SELF, JSON.stringify(options)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  const waiting: Array<{ resolve: (line: string) => void; reject: (err: Error) => void }> = [];
  let out = '';
  proc.stdout!.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    for (let newline = out.indexOf('\n'); newline >= 0; newline = out.indexOf('\n')) {
      const line = out.slice(0, newline);
      out = out.slice(newline + 1);
      const waiter = waiting.shift();
      if (waiter) waiter.resolve(line);
      else lines.push(line);
    }
  });
  proc.once('exit', (code) => {
    for (const waiter of waiting.splice(0)) {
      waiter.reject(new Error(`${options.role} ${options.variant} exited ${code}`));
    }
  });
  return {
    process: proc,
    next<T>() {
      const line = lines.shift();
      if (line !== undefined) return Promise.resolve(JSON.parse(line) as T);
      if (proc.exitCode !== null) {
        return Promise.reject(new Error(`${options.role} ${options.variant} exited`));
      }
      return new Promise<T>((resolve, reject) =>
        waiting.push({ resolve: (l) => resolve(JSON.parse(l) as T), reject }),
      );
    },
  };
}

interface ServerCpu {
  cpuMicros: number;
  handled: number;
}

/** BENCH_VARIANTS → the variants to run, in their usual order, always with the baseline. */
function selectVariants(setting: string | undefined): Variant[] {
  const names = new Set(
    (setting ?? '')
      .split(',')
      .map((name) => name.trim())
      .filter(Boolean),
  );
  if (names.size === 0) return [...VARIANTS];
  for (const name of names) {
    if (!(VARIANTS as readonly string[]).includes(name)) {
      throw new Error(`BENCH_VARIANTS: unknown variant "${name}" (known: ${VARIANTS.join(', ')})`);
    }
  }
  return VARIANTS.filter((variant) => variant === 'plaintext' || names.has(variant));
}

/** Runs the benchmark; see the file comment. */
export async function run(): Promise<BenchReport> {
  const seconds = Number(process.env['BENCH_SECONDS'] ?? 16);
  const rounds = Math.max(1, Number(process.env['BENCH_ROUNDS'] ?? 8));
  const concurrency = Number(process.env['BENCH_CONCURRENCY'] ?? 32);
  const variants = selectVariants(process.env['BENCH_VARIANTS']);
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-bench-'));
  const pki = await createTestPki({ dir, services: ['bench-server', 'bench-client'] });
  const files = (name: string): TlsFiles => ({
    certFile: pki.services[name]!.certFile,
    keyFile: pki.services[name]!.keyFile,
    caFile: pki.caFile,
  });
  // A fresh server process per variant in every round: one process can stay faster or slower
  // than an identical one for its whole life (code placement, JIT decisions), by up to 10
  // points of throughput here, so the rounds average over processes as well as over time.
  let servers = new Map<Variant, { child: Child; port: number }>();
  const startServers = async () => {
    const started = new Map<Variant, { child: Child; port: number }>();
    for (const variant of variants) {
      const server = child({
        role: 'server',
        variant,
        tls: files('bench-server'),
        peerId: pki.services['bench-client']!.spiffeId,
        traceFile: join(dir, `server-${variant}.jsonl`),
      });
      started.set(variant, { child: server, port: (await server.next<{ port: number }>()).port });
    }
    return started;
  };
  const stopServers = async () => {
    const exits = [...servers.values()].map(
      ({ child: server }) =>
        new Promise((resolve) =>
          server.process.exitCode !== null ? resolve(null) : server.process.once('exit', resolve),
        ),
    );
    for (const { child: server } of servers.values()) server.process.stdin?.end();
    await Promise.all(exits);
    servers = new Map();
  };
  const totals = new Map<Variant, Totals>();
  try {
    for (let round = 1; round <= rounds; round += 1) {
      servers = await startServers();
      for (const variant of variants) {
        process.stderr.write(`round ${round}/${rounds}: ${variant} ...\n`);
        const server = servers.get(variant)!;
        const loader = child({
          role: 'load',
          variant,
          tls: files('bench-client'),
          peerId: pki.services['bench-server']!.spiffeId,
          traceFile: join(dir, `client-${variant}.jsonl`),
          address: `127.0.0.1:${server.port}`,
          warmupMs: 1000,
          durationMs: (seconds * 1000) / rounds,
          concurrency,
        });
        // Warm-up over: from here on the server's CPU time and calls count.
        await loader.next<{ measuring: true }>();
        server.child.process.stdin!.write('cpu\n');
        const before = await server.child.next<ServerCpu>();
        const result = await loader.next<LoadResult>();
        server.child.process.stdin!.write('cpu\n');
        const after = await server.child.next<ServerCpu>();
        const sum = totals.get(variant) ?? {
          calls: 0,
          errors: 0,
          seconds: 0,
          latencies: [],
          clientCpuMicros: 0,
          serverCpuMicros: 0,
          serverCalls: 0,
        };
        sum.calls += result.calls;
        sum.errors += result.errors;
        sum.seconds += result.seconds;
        sum.clientCpuMicros += result.clientCpuMicros;
        sum.serverCpuMicros += after.cpuMicros - before.cpuMicros;
        sum.serverCalls += after.handled - before.handled;
        for (const latency of result.latencies) sum.latencies.push(latency);
        totals.set(variant, sum);
      }
      await stopServers();
    }
  } finally {
    await stopServers();
    await pki.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }

  const base = totals.get('plaintext')!;
  const baseRps = base.calls / base.seconds;
  const baseServerCpu = base.serverCpuMicros / base.serverCalls;
  const baseClientCpu = base.clientCpuMicros / base.calls;
  const rows = variants.map((variant) => {
    const r = totals.get(variant)!;
    const sorted = Float64Array.from(r.latencies).sort();
    const rps = r.calls / r.seconds;
    const serverCpu = r.serverCpuMicros / r.serverCalls;
    const clientCpu = r.clientCpuMicros / r.calls;
    return {
      variant,
      calls: r.calls,
      serverCalls: r.serverCalls,
      errors: r.errors,
      seconds: Number(r.seconds.toFixed(2)),
      throughput: Math.round(rps),
      p50Ms: Number(percentile(sorted, 50).toFixed(3)),
      p99Ms: Number(percentile(sorted, 99).toFixed(3)),
      throughputRatio: Number((rps / baseRps).toFixed(3)),
      serverCpuMicrosPerCall: Number(serverCpu.toFixed(1)),
      clientCpuMicrosPerCall: Number(clientCpu.toFixed(1)),
      // What a CPU-bound server keeps of plaintext throughput: robust on a busy machine,
      // where wall-clock throughput mostly measures the neighbours.
      serverCapacityRatio: Number((baseServerCpu / serverCpu).toFixed(3)),
      clientCapacityRatio: Number((baseClientCpu / clientCpu).toFixed(3)),
    };
  });
  const full = rows.find((r) => r.variant === 'mtls+telemetry');
  const floorRow = rows.find((r) => r.variant === 'mtls+telemetry-floor');
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const text = [
    'variant               calls/s   p50 ms   p99 ms  vs plain   srv CPU µs/call  vs plain   cli CPU µs/call  vs plain',
    ...rows.map((r) =>
      [
        r.variant.padEnd(20),
        String(r.throughput).padStart(8),
        r.p50Ms.toFixed(2).padStart(8),
        r.p99Ms.toFixed(2).padStart(8),
        pct(r.throughputRatio).padStart(9),
        r.serverCpuMicrosPerCall.toFixed(1).padStart(17),
        pct(r.serverCapacityRatio).padStart(9),
        r.clientCpuMicrosPerCall.toFixed(1).padStart(17),
        pct(r.clientCapacityRatio).padStart(9),
      ].join(' '),
    ),
    `errors: ${rows.map((r) => `${r.variant} ${r.errors}`).join(', ')}`,
    ...rows
      .filter((r) => r.variant === 'mtls+telemetry' || r.variant === 'mtls+telemetry-10%')
      .map((r) => {
        const variant = r.variant;
        const verdict = (x: number) => (x >= 0.85 ? 'met' : 'NOT met');
        return (
          `target ${variant} >= 85% of plaintext: throughput ${pct(r.throughputRatio)} ` +
          `(${verdict(r.throughputRatio)}), server CPU capacity ${pct(r.serverCapacityRatio)} ` +
          `(${verdict(r.serverCapacityRatio)})`
        );
      }),
    ...rows
      .filter((r) => r.variant === 'mtls+telemetry-floor')
      .map(
        (r) =>
          `floor (least any conforming mTLS+telemetry does): throughput ` +
          `${pct(r.throughputRatio)} of plaintext, ` +
          (r.throughputRatio >= 0.85 ? 'at or above' : 'below') +
          ' the 85% target',
      ),
  ].join('\n');
  return {
    title:
      `foundation: unary echo (${MESSAGE.length} B) between two processes, ${concurrency} in ` +
      `flight, ${seconds} s per variant in ${rounds} interleaved rounds`,
    text,
    data: {
      concurrency,
      secondsPerVariant: seconds,
      rounds,
      messageBytes: MESSAGE.length,
      rows,
      targetMet: full && {
        throughput: full.throughputRatio >= 0.85,
        serverCapacity: full.serverCapacityRatio >= 0.85,
      },
      floorMetTarget: floorRow && floorRow.throughputRatio >= 0.85,
    },
  };
}

if (import.meta.main && process.argv[2]) {
  const options = JSON.parse(process.argv[2]) as ChildOptions;
  if (options.role === 'server') await serve(options);
  else await load(options);
}
