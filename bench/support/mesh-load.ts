/**
 * The mesh benchmark's load generator, run as its own process:
 * `node bench/support/mesh-load.ts '<LoadPlan JSON>'` (see `load-protocol.ts`).
 *
 * It takes client-credentials tokens from the broker for every identity, then runs the phases
 * it is sent on stdin: each worker calls ModelInfer on iris over TLS with a bearer token (and
 * the partner certificate for certificate-bound tokens), identities taken in turn, Iris rows in
 * turn. It exits when stdin ends, so it never outlives the benchmark.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import {
  GRPCInferenceServiceClient,
  ModelInferRequest,
  type ModelInferResponse,
} from '../../gen/inference/grpc_service.ts';
import { irisDataset } from '../../services/inference/demo/datasets.ts';
import {
  percentile,
  type LoadMessage,
  type LoadPlan,
  type PhaseResult,
  type PhaseSpec,
} from './load-protocol.ts';
import { createTokenSource, type TokenSource } from './token-source.ts';

const STATUS_NAMES = new Map<number, string>(
  Object.entries(status)
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]) => [v as number, k]),
);

function send(message: LoadMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

interface Caller {
  tokens: TokenSource;
  client: GRPCInferenceServiceClient;
}

// The real Iris rows, in turn: the traffic of a benign client. The extraction monitor does not
// count exact repeats, so cycling them never looks like synthetic probing.
const data = irisDataset();
const requests = [...data.train.xs, ...data.test.xs].map((row) =>
  ModelInferRequest.fromPartial({
    modelName: 'iris',
    inputs: [
      { name: 'input', datatype: 'FP32', shape: [1, row.length], contents: { fp32Contents: row } },
    ],
  }),
);

function infer(plan: LoadPlan, caller: Caller, i: number): Promise<ModelInferResponse> {
  const md = new Metadata();
  md.set('authorization', `Bearer ${caller.tokens.current()}`);
  return new Promise((resolve, reject) =>
    caller.client.modelInfer(
      requests[i % requests.length]!,
      md,
      { deadline: Date.now() + plan.callDeadlineMs },
      (err, res) => (err ? reject(err) : resolve(res!)),
    ),
  );
}

/** `<grpc code name> <bulwark error code>` of a failed call. */
function failureKey(err: unknown): { key: string; refusal: boolean } {
  const e = err as Partial<ServiceError>;
  const code = typeof e.code === 'number' ? e.code : status.UNKNOWN;
  const bulwark = e.metadata?.get('bulwark-error-code')[0]?.toString();
  const key = `${STATUS_NAMES.get(code) ?? code}${bulwark ? ` ${bulwark}` : ''}`;
  const refusal =
    code === status.RESOURCE_EXHAUSTED ||
    bulwark === 'ERR_INFERENCE_QUOTA_EXCEEDED' ||
    bulwark === 'ERR_INFERENCE_EXTRACTION_BLOCKED';
  return { key, refusal };
}

const bump = (counts: Record<string, number>, key: string) => {
  counts[key] = (counts[key] ?? 0) + 1;
};

async function runPhase(plan: LoadPlan, callers: Caller[], spec: PhaseSpec): Promise<PhaseResult> {
  const latencies: number[] = [];
  const refused: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const extractionStates: Record<string, number> = {};
  const renewalsBefore = callers.reduce((n, c) => n + c.tokens.renewals, 0);
  const failuresBefore = callers.reduce((n, c) => n + c.tokens.renewalFailures, 0);
  let attempted = 0;
  let okWithoutReceipt = 0;
  let next = 0;
  const begin = performance.now();
  const measureFrom = begin + spec.warmupMs;
  const end = measureFrom + spec.durationMs;
  const interval = spec.ratePerSec ? 1000 / spec.ratePerSec : 0;
  let slot = begin;

  const worker = async () => {
    for (;;) {
      if (interval) {
        // Pacing: each call takes the next free slot of the shared schedule.
        const at = Math.max(performance.now(), slot);
        slot = at + interval;
        const wait = at - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      const t = performance.now();
      if (t >= end) return;
      const i = next++;
      const recorded = t >= measureFrom;
      if (recorded) attempted++;
      try {
        const res = await infer(plan, callers[i % callers.length]!, i);
        if (!recorded) continue;
        latencies.push(performance.now() - t);
        if (!res.parameters['bulwark.audit.leaf_index']) okWithoutReceipt++;
        const state = res.parameters['bulwark.extraction.state']?.parameterChoice?.value;
        bump(extractionStates, typeof state === 'string' ? state : 'normal');
      } catch (err) {
        if (!recorded) continue;
        const { key, refusal } = failureKey(err);
        bump(refusal ? refused : errors, key);
      }
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, worker));
  const seconds = (performance.now() - measureFrom) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    name: spec.name,
    concurrency: spec.concurrency,
    ...(spec.ratePerSec ? { ratePerSec: spec.ratePerSec } : {}),
    seconds,
    attempted,
    ok: latencies.length,
    okPerSec: latencies.length / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.at(-1) ?? NaN,
    refused,
    errors,
    okWithoutReceipt,
    extractionStates,
    tokenRefreshes: callers.reduce((n, c) => n + c.tokens.renewals, 0) - renewalsBefore,
    tokenRefreshFailures:
      callers.reduce((n, c) => n + c.tokens.renewalFailures, 0) - failuresBefore,
  };
}

async function main(): Promise<void> {
  const plan = JSON.parse(process.argv[2] ?? '') as LoadPlan;
  const ca = readFileSync(plan.caFile);
  const callers: Caller[] = await Promise.all(
    plan.identities.map(async (identity) => {
      const tokens = await createTokenSource(identity, {
        tokenUrl: plan.tokenUrl,
        ca: ca.toString('utf8'),
      });
      const tls =
        identity.certFile && identity.keyFile
          ? credentials.createSsl(
              ca,
              readFileSync(identity.keyFile),
              readFileSync(identity.certFile),
            )
          : credentials.createSsl(ca);
      // One channel per identity, as separate client applications would have.
      const client = new GRPCInferenceServiceClient(plan.inferenceAddress, tls, {
        'grpc.ssl_target_name_override': 'localhost',
      });
      return { tokens, client };
    }),
  );
  send({ type: 'ready', subjects: callers.map((c) => c.tokens.subject) });

  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const spec = JSON.parse(line) as PhaseSpec;
    send({ type: 'phase', result: await runPhase(plan, callers, spec) });
  }
  for (const c of callers) c.client.close();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    send({ type: 'error', message: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  },
);
