/**
 * Fault: the policy service is killed with SIGKILL while a load generator calls ModelInfer.
 *
 * Inference fails closed: once its cached decisions have run out, no call is answered while
 * policy is down, and each refusal is UNAVAILABLE (the design: "an unreachable policy service
 * is UNAVAILABLE"). After policy restarts, calls succeed again within 2 s of the moment the
 * restarted service reports ready (issue 7), and keep succeeding.
 */
import * as grpc from '@grpc/grpc-js';
import type { GRPCInferenceServiceClient } from '../../gen/inference/grpc_service.ts';
import type { ServiceProcess } from './support/child-service.ts';
import { createFaultMesh, type FaultMesh } from './support/fault-mesh.ts';
import { inferIris } from './support/iris-caller.ts';
import {
  startLoad,
  summary,
  type CallRecord,
  type LoadGenerator,
} from './support/load-generator.ts';
import { createLoadTokens, type LoadTokens } from './support/test-tokens.ts';

const OK = grpc.status.OK;
/**
 * Inference polls the policy revision every 500 ms and drops its decision cache when the poll
 * fails, so cached allows stop within about this long after policy dies.
 */
const DECISION_CACHE_MS = 1000;
/** Slack between the test's clock and the inference process's clock. */
const CLOCK_SLACK_MS = 100;
/** The recovery bound of issue 7. */
const RECOVERY_BOUND_MS = 2000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let mesh: FaultMesh;
let tokens: LoadTokens;
let policy: ServiceProcess;
let client: GRPCInferenceServiceClient;
let load: LoadGenerator | undefined;

beforeAll(async () => {
  mesh = await createFaultMesh();
  tokens = await createLoadTokens(mesh.dir);
  await mesh.startAudit();
  policy = await mesh.startPolicy(tokens.source);
  const { address } = await mesh.startInference(tokens.source);
  client = mesh.inferenceClient(address);
}, 150_000);

afterAll(async () => {
  await load?.stop();
  await mesh?.close();
});

test('policy killed under load: fails closed while down, answers again within 2 s of restart', async () => {
  load = startLoad({
    callers: 8,
    maxDurationMs: 50_000,
    minIntervalMs: 20,
    call: async (caller, seq, id) => inferIris(client, await tokens.tokenFor(caller, seq), id, seq),
  });
  let killAt = 0;
  let restartAt = 0;
  let readyAt = 0;
  let records: readonly CallRecord[];
  try {
    await load.until((r) => r.filter((c) => c.code === OK).length >= 40, 30_000);
    killAt = performance.now();
    await policy.kill9();
    // Down for longer than the decision cache, with calls coming all along.
    await load.until(
      (r) => r.filter((c) => c.start > killAt + DECISION_CACHE_MS + CLOCK_SLACK_MS).length >= 40,
      20_000,
    );
    await sleep(500);
    restartAt = performance.now();
    policy = await mesh.startPolicy(tokens.source);
    readyAt = policy.readyAt;
    // Keep calling past the bound, so "succeed again" covers every call after it.
    await load.until(
      (r) => r.filter((c) => c.start > readyAt + RECOVERY_BOUND_MS).length >= 40,
      30_000,
    );
  } finally {
    records = await load.stop();
  }

  // Fail closed: a call that started after every cached decision had expired and ended before
  // the restart began got no answer, only UNAVAILABLE.
  const outage = records.filter(
    (r) => r.start > killAt + DECISION_CACHE_MS + CLOCK_SLACK_MS && r.end < restartAt,
  );
  expect(outage.length).toBeGreaterThanOrEqual(20);
  expect(outage.filter((r) => r.code === OK)).toEqual([]);
  expect(new Set(outage.map((r) => r.code))).toEqual(new Set([grpc.status.UNAVAILABLE]));
  expect(new Set(outage.map((r) => r.details))).toEqual(new Set(['policy service unavailable']));

  // Recovery, measured from the moment the restarted policy service reported ready.
  const firstOk = records
    .filter((r) => r.code === OK && r.start > killAt + DECISION_CACHE_MS + CLOCK_SLACK_MS)
    .reduce((min, r) => Math.min(min, r.end), Infinity);
  const recoveryMs = firstOk - readyAt;
  expect(recoveryMs).toBeLessThanOrEqual(RECOVERY_BOUND_MS);
  const after = records.filter((r) => r.start > readyAt + RECOVERY_BOUND_MS);
  expect(after.length).toBeGreaterThanOrEqual(40);
  expect(after.filter((r) => r.code !== OK).map((r) => `${r.code} ${r.details}`)).toEqual([]);
  // Nothing but policy's absence made a call fail.
  expect(
    records
      .filter((r) => r.code !== OK && r.details !== 'policy service unavailable')
      .map((r) => `${r.code} ${r.details}`),
  ).toEqual([]);
  process.stdout.write(
    `policy-kill: ${records.length} calls (${summary(records)}), ${outage.length} in the outage; ` +
      `policy ready ${(readyAt - restartAt).toFixed(0)} ms after restart; ` +
      `first answer ${recoveryMs.toFixed(0)} ms after ready\n`,
  );
}, 120_000);
