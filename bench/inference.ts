/**
 * Inference benchmark on the Iris demo model, in one run:
 *   (a) onnxruntime in-process (the floor),
 *   (b) plain insecure gRPC ModelInfer: a bare server process (decode, run, encode),
 *   (c) the full guarded path: the inference service process (`services/inference/main.ts
 *       --demo`) with mTLS/TLS, JWT, policy (the policy service process), quota, validation,
 *       run, output hardening, extraction monitor, audit-before-answer (the audit service
 *       process on SQLite) and telemetry,
 *   (d) the floor of audit-before-answer: the server of (b) that, before answering, sends a
 *       record (with the input and output sha256) over bare TCP to a second process, which
 *       group-commits it to SQLite with fsync and acknowledges it (`support/floor-audit.ts`).
 *       No TLS, token, policy, Merkle tree or gRPC on that hop: every guarded design pays at
 *       least this, so (d)/(b) bounds what (c)/(b) can reach on this machine.
 * Requests/s and p50/p99 latency at concurrency 1, 16 and 64, and the ratios (c)/(b), (c)/(a)
 * and (d)/(b). The load generator runs in this process; every server runs in its own process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import type { BenchReport } from './run.ts';
import { processCpuSeconds } from './support/cpu.ts';
import { connectFloorAudit, startFloorAuditServer } from './support/floor-audit.ts';
import {
  GRPCInferenceServiceClient,
  GRPCInferenceServiceService,
  ModelInferRequest,
  ModelInferResponse,
} from '../gen/inference/grpc_service.ts';
import { createTestPki, spiffeIdOf } from '../mesh/ca/index.ts';
import { createTestIssuer } from '../services/policy/testing.ts';
import { generateSignerKey, loadTrustedKey } from '../services/inference/bundle/signing.ts';
import { signedIrisFiles } from '../services/inference/bundle/testing.ts';
import { verifyBundleFiles } from '../services/inference/bundle/verify.ts';
import { irisDataset } from '../services/inference/demo/datasets.ts';
import { trainLogisticRegression } from '../services/inference/demo/train.ts';
import { exportLinearClassifier } from '../services/inference/demo/export.ts';
import { createModelRunner } from '../services/inference/runtime/model-runner.ts';
import { fromOrt, toOrt } from '../services/inference/runtime/convert.ts';
import { emptyContents, encodeTyped } from '../services/inference/tensor/codec.ts';
import { validateInferRequest } from '../services/inference/tensor/validate.ts';

const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? '1,16,64').split(',').map(Number);
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 3000);
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 1000);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const data = irisDataset();
const rows = [...data.train.xs, ...data.test.xs];

interface Result {
  mode: string;
  concurrency: number;
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU time per request, microseconds, per process taking part (load generator included). */
  cpuUsPerRequest?: Record<string, number>;
}

/** Measures CPU used by the load generator and the named server processes over `work`. */
async function withCpu<T extends Result>(
  processes: Record<string, number>,
  work: () => Promise<T>,
): Promise<T> {
  const before = Object.fromEntries(
    Object.entries(processes).map(([name, pid]) => [name, processCpuSeconds(pid)]),
  );
  const self = process.cpuUsage();
  const result = await work();
  const used = process.cpuUsage(self);
  const perRequest = (seconds: number) => Math.round((seconds * 1e6) / result.requests);
  result.cpuUsPerRequest = {
    'load generator': perRequest((used.user + used.system) / 1e6),
    ...Object.fromEntries(
      Object.entries(processes).map(([name, pid]) => [
        name,
        perRequest(processCpuSeconds(pid) - before[name]!),
      ]),
    ),
  };
  return result;
}

/** The Iris model as the demo builds it (same training), verified like a bundle. */
async function irisRunner() {
  const key = generateSignerKey();
  const onnx = exportLinearClassifier(
    trainLogisticRegression(data.train.xs, data.train.ys, { classes: 3, epochs: 300 }),
    'iris',
  );
  const bundle = verifyBundleFiles(signedIrisFiles(key.privateKeyPem, { onnx }), {
    trustedKeys: [loadTrustedKey(key.publicKeyPem)],
  });
  return createModelRunner(bundle);
}

/**
 * Role of a child process started by this file: the bare gRPC server of mode (b), or of mode
 * (d) when BULWARK_BENCH_FLOOR_AUDIT_PORT names the floor audit server.
 */
async function plainServer(): Promise<void> {
  const runner = await irisRunner();
  const { manifest } = runner.bundle;
  const floorPort = process.env.BULWARK_BENCH_FLOOR_AUDIT_PORT;
  const floor = floorPort ? await connectFloorAudit(Number(floorPort)) : undefined;
  // What an inference record must carry at least: the input and output digests.
  const record = async (request: ModelInferRequest, response: ModelInferResponse) => {
    if (!floor) return response;
    const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
    const leaf = JSON.stringify({
      event: 'inference',
      model: 'iris@1',
      input: sha256(ModelInferRequest.encode(request).finish()),
      output: sha256(ModelInferResponse.encode(response).finish()),
      at: Date.now(),
    });
    const index = await floor.append(Buffer.from(leaf));
    return {
      ...response,
      parameters: {
        'bulwark.audit.leaf_index': {
          parameterChoice: { $case: 'int64Param' as const, value: index },
        },
      },
    };
  };
  const server = new grpc.Server();
  server.addService(GRPCInferenceServiceService, {
    modelInfer: (
      call: grpc.ServerUnaryCall<ModelInferRequest, ModelInferResponse>,
      cb: grpc.sendUnaryData<ModelInferResponse>,
    ) => {
      const v = validateInferRequest(call.request, manifest);
      runner
        .run(Object.fromEntries(v.inputs.map((t) => [t.name, toOrt(t)])), Date.now() + 2000)
        .then((out) =>
          record(call.request, {
            modelName: 'iris',
            modelVersion: '1',
            id: call.request.id,
            parameters: {},
            outputs: Object.entries(out).map(([name, t]) => {
              const tensor = fromOrt(name, t);
              return {
                name,
                datatype: tensor.datatype,
                shape: tensor.shape,
                parameters: {},
                contents: encodeTyped(tensor),
              };
            }),
            rawOutputContents: [],
          } as ModelInferResponse),
        )
        .then((response) => cb(null, response))
        .catch((err: Error) => cb(err));
    },
  } as unknown as grpc.UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  process.stdout.write(
    `${JSON.stringify({ msg: 'plain server ready', address: `127.0.0.1:${port}` })}\n`,
  );
}

function request(i: number): ModelInferRequest {
  return {
    modelName: 'iris',
    modelVersion: '',
    id: '',
    parameters: {},
    inputs: [
      {
        name: 'input',
        datatype: 'FP32',
        shape: [1, 4],
        parameters: {},
        contents: { ...emptyContents(), fp32Contents: rows[i % rows.length]! },
      },
    ],
    outputs: [],
    rawInputContents: [],
  };
}

async function measure(
  mode: string,
  concurrency: number,
  once: (i: number) => Promise<unknown>,
): Promise<Result> {
  // Warm up at some concurrency first, so that every concurrency level is measured against
  // JIT-compiled code and open connections, as in a service that has been running a while.
  const warmUntil = performance.now() + WARMUP_MS;
  let w = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (performance.now() < warmUntil) await once(w++);
    }),
  );
  const latencies: number[] = [];
  const start = performance.now();
  let n = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() - start < DURATION_MS) {
        const t = performance.now();
        await once(n++);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = performance.now() - start;
  latencies.sort((a, b) => a - b);
  const q = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
  return {
    mode,
    concurrency,
    requests: latencies.length,
    rps: (latencies.length / elapsed) * 1000,
    p50Ms: q(0.5),
    p99Ms: q(0.99),
  };
}

function unary(
  client: GRPCInferenceServiceClient,
  req: ModelInferRequest,
  md: grpc.Metadata,
): Promise<ModelInferResponse> {
  return new Promise((resolve, reject) =>
    client.modelInfer(req, md, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

/** Starts a process and resolves with the address from its "... ready" log line. */
function startProcess(
  children: ChildProcess[],
  args: string[],
  ready: string,
  env: NodeJS.ProcessEnv = {},
): Promise<string> {
  // e.g. BENCH_CHILD_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' to profile the servers.
  const nodeArgs = process.env.BENCH_CHILD_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, OTEL_TRACES_EXPORTER: 'none', ...env },
  });
  children.push(child);
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args[0]} not ready:\n${out}`)), 60_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.includes(`"${ready}"`));
      if (line) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { address: string }).address);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    child.once('exit', (code) => reject(new Error(`${args[0]} exited with ${code}:\n${out}`)));
  });
}

export async function run(): Promise<BenchReport> {
  const dir = await mkdtemp(join(tmpdir(), 'bulwark-bench-inference-'));
  const children: ChildProcess[] = [];
  const results: Result[] = [];
  try {
    const pki = await createTestPki({
      dir: join(dir, 'certs'),
      services: ['inference', 'policy', 'audit'],
    });
    const idp = await createTestIssuer();
    await writeFile(join(dir, 'jwks.json'), JSON.stringify({ keys: [idp.publicJwk] }));
    const [policyPort, policyMetrics, auditPort, auditMetrics, inferenceMetrics] =
      await Promise.all([1, 2, 3, 4, 5].map(freePort));
    await writeFile(
      join(dir, 'bulwark.yaml'),
      [
        'version: 1',
        `stateDir: ${join(dir, 'state')}`,
        'services:',
        `  policy: { port: ${policyPort}, metricsPort: ${policyMetrics} }`,
        `  audit: { port: ${auditPort}, metricsPort: ${auditMetrics} }`,
        `  inference: { metricsPort: ${inferenceMetrics} }`,
        'policy:',
        `  modelFile: ${join(ROOT, 'policy', 'model.conf')}`,
        `  policyFile: ${join(ROOT, 'policy', 'policy.yaml')}`,
        '  watch: false',
        '',
      ].join('\n'),
    );
    await mkdir(join(dir, 'state'));
    const config = ['--config', join(dir, 'bulwark.yaml'), '--certs', join(dir, 'certs')];
    process.stderr.write('starting audit, policy, inference and plain server processes\n');
    await startProcess(
      children,
      ['services/audit/main.ts', ...config, '--sqlite', join(dir, 'audit.db'), '--no-metrics'],
      'audit service ready',
    );
    await startProcess(
      children,
      [
        'services/policy/main.ts',
        ...config,
        '--issuer',
        idp.issuer,
        '--jwks-file',
        join(dir, 'jwks.json'),
      ],
      'policy service ready',
    );
    const inferenceAddress = await startProcess(
      children,
      [
        'services/inference/main.ts',
        ...config,
        '--port',
        '0',
        '--issuer',
        idp.issuer,
        '--jwks-file',
        join(dir, 'jwks.json'),
        '--demo',
        '--no-metrics',
      ],
      'inference service ready',
    );
    const plainAddress = await startProcess(
      children,
      [fileURLToPath(import.meta.url)],
      'plain server ready',
      { BULWARK_BENCH_ROLE: 'plain-server' },
    );
    const floorAuditPort = await startProcess(
      children,
      [fileURLToPath(import.meta.url)],
      'floor audit ready',
      { BULWARK_BENCH_ROLE: 'floor-audit', BULWARK_BENCH_FLOOR_DB: join(dir, 'floor.db') },
    );
    const floorAddress = await startProcess(
      children,
      [fileURLToPath(import.meta.url)],
      'plain server ready',
      { BULWARK_BENCH_ROLE: 'plain-server', BULWARK_BENCH_FLOOR_AUDIT_PORT: floorAuditPort },
    );

    const [audit, policy, inference, plain, floorAudit, floorServer] = children.map((c) => c.pid!);
    const pids = { audit: audit!, policy: policy!, inference: inference!, plain: plain! };
    const runner = await irisRunner();
    const plainClient = new GRPCInferenceServiceClient(
      plainAddress,
      grpc.credentials.createInsecure(),
    );
    const floorClient = new GRPCInferenceServiceClient(
      floorAddress,
      grpc.credentials.createInsecure(),
    );
    const guardedClient = new GRPCInferenceServiceClient(
      inferenceAddress,
      grpc.credentials.createSsl(Buffer.from(pki.caPem), null, null, {
        checkServerIdentity: (_h, peer) =>
          spiffeIdOf(peer) === pki.services.inference!.spiffeId
            ? undefined
            : new Error('wrong server'),
      }),
    );
    const none = new grpc.Metadata();
    // Enough subjects that the per-subject quota (low tier: 50/s, burst 100) is not what is
    // measured: 16 per concurrent caller, at most 256 (256 × 50/s here). Each subject calls
    // again and again, so its token and policy decision stay cached as for a real client.
    const tokens = await Promise.all(
      Array.from({ length: 256 }, async (_, i) => {
        const md = new grpc.Metadata();
        md.set(
          'authorization',
          `Bearer ${await idp.mint({ sub: `acme/bench-${i}`, org: 'acme', roles: ['analyst'] }, { lifetimeSec: 3600 })}`,
        );
        return md;
      }),
    );
    for (const c of CONCURRENCY) {
      process.stderr.write(`concurrency ${c}\n`);
      results.push(
        await measure('a onnxruntime', c, (i) =>
          runner.run(
            {
              input: toOrt({
                name: 'input',
                datatype: 'FP32',
                shape: [1, 4],
                data: Float32Array.from(rows[i % rows.length]!),
              }),
            },
            Date.now() + 2000,
          ),
        ),
      );
      results.push(
        await withCpu({ 'plain server': pids.plain }, () =>
          measure('b plain gRPC', c, (i) => unary(plainClient, request(i), none)),
        ),
      );
      results.push(
        await withCpu({ inference: pids.inference, policy: pids.policy, audit: pids.audit }, () =>
          measure('c guarded', c, (i) =>
            unary(guardedClient, request(i), tokens[i % Math.min(tokens.length, 16 * c)]!),
          ),
        ),
      );
      results.push(
        await withCpu({ 'floor server': floorServer!, 'floor audit': floorAudit! }, () =>
          measure('d floor', c, (i) => unary(floorClient, request(i), none)),
        ),
      );
    }
    floorClient.close();
    plainClient.close();
    guardedClient.close();
    await runner.release();
    await pki.cleanup();
  } finally {
    for (const child of children) {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
    }
    await rm(dir, { recursive: true, force: true });
  }

  const lines = ['mode            conc     req/s    p50 ms   p99 ms'];
  for (const r of results) {
    lines.push(
      `${r.mode.padEnd(15)} ${String(r.concurrency).padStart(4)} ${r.rps.toFixed(0).padStart(9)} ${r.p50Ms.toFixed(3).padStart(9)} ${r.p99Ms.toFixed(3).padStart(8)}`,
    );
  }
  lines.push('', 'CPU per request (us), by process');
  for (const r of results) {
    if (!r.cpuUsPerRequest) continue;
    const parts = Object.entries(r.cpuUsPerRequest).map(([name, us]) => `${name} ${us}`);
    const total = Object.values(r.cpuUsPerRequest).reduce((a, b) => a + b, 0);
    lines.push(
      `${r.mode.padEnd(15)} ${String(r.concurrency).padStart(4)}  total ${total}: ${parts.join(', ')}`,
    );
  }
  const ratios = CONCURRENCY.map((c) => {
    const get = (m: string) => results.find((r) => r.mode.startsWith(m) && r.concurrency === c)!;
    const [a, b, g, d] = [get('a'), get('b'), get('c'), get('d')];
    return {
      concurrency: c,
      throughputCOverB: g.rps / b.rps,
      throughputCOverA: g.rps / a.rps,
      addedP50MsCOverB: g.p50Ms - b.p50Ms,
      throughputDOverB: d.rps / b.rps,
      addedP50MsDOverB: d.p50Ms - b.p50Ms,
    };
  });
  const pct = (x: number) => `${(x * 100).toFixed(1).padStart(12)}%`;
  const ms = (x: number) => `${x.toFixed(3).padStart(10)} ms`;
  lines.push(
    '',
    'conc  (c)/(b) req/s  (c)/(a) req/s  p50 added (c)-(b)  (d)/(b) req/s  p50 added (d)-(b)',
  );
  for (const r of ratios) {
    lines.push(
      `${String(r.concurrency).padStart(4)}  ${pct(r.throughputCOverB)}  ${pct(r.throughputCOverA)}  ${ms(r.addedP50MsCOverB)}  ${pct(r.throughputDOverB)}  ${ms(r.addedP50MsDOverB)}`,
    );
  }
  lines.push(
    '',
    'target: (c) keeps >= 70% of (b) throughput and adds <= 1 ms at p50.',
    '(d) is the floor of audit-before-answer here (a bare second process that fsyncs each group ' +
      'of records before acknowledging): (c)/(b) cannot exceed (d)/(b).',
  );
  return {
    title:
      'inference: Iris ModelInfer — onnxruntime vs plain gRPC vs guarded path (separate processes)',
    text: lines.join('\n'),
    data: { durationMs: DURATION_MS, results, ratios },
  };
}

if (process.env.BULWARK_BENCH_ROLE === 'plain-server') await plainServer();
if (process.env.BULWARK_BENCH_ROLE === 'floor-audit') {
  const port = await startFloorAuditServer(process.env.BULWARK_BENCH_FLOOR_DB!);
  process.stdout.write(`${JSON.stringify({ msg: 'floor audit ready', address: String(port) })}\n`);
}
