/**
 * Fault: the audit service is killed with SIGKILL while a load generator calls ModelInfer.
 *
 * Inference answers only after audit acknowledged the record (design, step 9), so during the
 * outage every call must be UNAVAILABLE, never an answer. After audit restarts on the same
 * database, the log must hold the answers the callers received, record for record (request id
 * and leaf index), and the whole log verifies against its signed checkpoints.
 *
 * The kill can make a batch durable whose acknowledgement never left the killed process: those
 * callers were told UNAVAILABLE ("not answered") while the log says success. Inference queues
 * such records durably and, once audit is back, appends a withhold record for each
 * (`attributes.withholds` = the original record id). So, exactly and with no allowance:
 * (success records - withheld records) = the OK answers the callers received.
 */
import * as grpc from '@grpc/grpc-js';
import { Outcome } from '../../gen/bulwark/audit/v1/audit.ts';
import { WITHHELD_REASON } from '../../services/inference/guards/withheld-answers.ts';
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
import {
  announcedLog,
  checkpoint,
  inferenceRecords,
  successfulInferences,
  verifyLog,
  verifyOffline,
} from './support/audit-reader.ts';
import { createLoadTokens, type LoadTokens } from './support/test-tokens.ts';

const OK = grpc.status.OK;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const oks = (records: readonly CallRecord[], after = -Infinity) =>
  records.filter((r) => r.code === OK && r.start > after).length;

let mesh: FaultMesh;
let tokens: LoadTokens;
let audit: ServiceProcess;
let client: GRPCInferenceServiceClient;
let load: LoadGenerator | undefined;

beforeAll(async () => {
  mesh = await createFaultMesh();
  tokens = await createLoadTokens(mesh.dir);
  audit = await mesh.startAudit();
  await mesh.startPolicy(tokens.source);
  const { address } = await mesh.startInference(tokens.source);
  client = mesh.inferenceClient(address);
}, 150_000);

afterAll(async () => {
  await load?.stop();
  await mesh?.close();
});

test('audit killed under load: UNAVAILABLE while down, and every answer is in the log after restart', async () => {
  load = startLoad({
    callers: 8,
    maxDurationMs: 50_000,
    minIntervalMs: 20,
    call: async (caller, seq, id) => inferIris(client, await tokens.tokenFor(caller, seq), id, seq),
  });
  let killAt = 0;
  let restartAt = 0;
  let readyAt = 0;
  let before: string | undefined;
  const firstLog = announcedLog(audit.output());
  let records: readonly CallRecord[];
  try {
    // Warm: answers flow and are audited.
    await load.until((r) => oks(r) >= 40, 30_000);
    before = (await checkpoint(mesh.auditReader())).checkpoint;
    killAt = performance.now();
    await audit.kill9();
    // The outage: calls keep coming for a while.
    await load.until((r) => r.filter((c) => c.start > killAt).length >= 40, 20_000);
    await sleep(1500);
    restartAt = performance.now();
    audit = await mesh.startAudit();
    readyAt = audit.readyAt;
    // Answers flow again.
    await load.until((r) => oks(r, readyAt) >= 40, 30_000);
  } finally {
    records = await load.stop();
  }

  const failures = records.filter((r) => r.code !== OK);
  // During the outage (calls started after the kill and ended before the restart began):
  // no answer at all, and every refusal is UNAVAILABLE.
  const outage = records.filter((r) => r.start > killAt && r.end < restartAt);
  expect(outage.length).toBeGreaterThanOrEqual(20);
  expect(outage.filter((r) => r.code === OK)).toEqual([]);
  expect(new Set(outage.map((r) => r.code))).toEqual(new Set([grpc.status.UNAVAILABLE]));
  expect(new Set(outage.map((r) => r.details))).toEqual(
    new Set(['audit service unavailable: the request was not answered']),
  );
  // Outside the outage nothing else failed, except calls caught in flight by the kill.
  expect(
    failures.filter((r) => r.code !== grpc.status.UNAVAILABLE).map((r) => `${r.code} ${r.details}`),
  ).toEqual([]);

  // What the callers were answered is what the log holds, record for record.
  const answered = records.filter((r) => r.code === OK);
  const reader = mesh.auditReader();
  await checkpoint(reader);
  const answerRecords = async () =>
    (await successfulInferences(reader)).filter(
      (e) => e.record?.service === 'inference' && e.record.action === 'infer',
    );
  const withholdRecords = async () =>
    (await inferenceRecords(reader, Outcome.OUTCOME_ERROR)).filter(
      (e) => e.record?.service === 'inference' && e.record.reason === WITHHELD_REASON,
    );
  const answeredIds = new Set(answered.map((r) => r.id));
  // Inference notes the unacknowledged ones once audit is back; give its queue time to drain
  // (each success record without an answer must end up withheld; checked exactly below).
  const deadline = performance.now() + 20_000;
  for (;;) {
    const withheldIds = new Set(
      (await withholdRecords()).map((e) => e.record!.attributes['withholds']),
    );
    const pending = (await answerRecords()).filter(
      (e) =>
        !answeredIds.has(e.record!.attributes['request_id'] ?? '') &&
        !withheldIds.has(e.record!.id),
    );
    if (pending.length === 0 || performance.now() > deadline) break;
    await sleep(200);
  }
  const logged = await answerRecords();
  const withheld = await withholdRecords();
  const leafOf = new Map(
    logged.map((e) => [e.record!.attributes['request_id'] ?? '', e.leafIndex]),
  );
  // Never an unaudited answer: each answer is in the log at the leaf its receipt names.
  expect(answered.filter((r) => leafOf.get(r.id) !== r.leafIndex).map((r) => r.id)).toEqual([]);
  // Each withhold record refers to a success record of the same request (when that record
  // reached the log at all) and never to an answer a caller received.
  const recordById = new Map(logged.map((e) => [e.record!.id, e.record!]));
  for (const w of withheld) {
    const target = recordById.get(w.record!.attributes['withholds'] ?? '');
    if (target) {
      expect(target.attributes['request_id']).toBe(w.record!.attributes['request_id']);
      expect(target.traceId).toBe(w.record!.traceId);
    }
    expect(answeredIds.has(w.record!.attributes['request_id'] ?? '')).toBe(false);
  }
  // Exactly: (success records - withheld records) = OK answers.
  const withheldIds = new Set(withheld.map((e) => e.record!.attributes['withholds']));
  const notWithheld = logged.filter((e) => !withheldIds.has(e.record!.id));
  expect(notWithheld.map((e) => e.record!.attributes['request_id']).sort()).toEqual(
    answered.map((r) => r.id).sort(),
  );
  expect(notWithheld.length).toBe(answered.length);
  const loggedNotAnswered = logged.filter((e) => withheldIds.has(e.record!.id));
  const inFlight = records.filter((r) => r.start < killAt && r.end > killAt);

  const firstOk = answered
    .filter((r) => r.start > killAt)
    .reduce((min, r) => Math.min(min, r.end), Infinity);
  // The log verifies: by the service itself, and offline from its file with the key the first
  // process announced, extending the checkpoint signed before the kill.
  const verified = await verifyLog(reader);
  expect(verified).toMatchObject({ ok: true, reason: '' });
  expect(verified.treeSize).toBeGreaterThanOrEqual(logged.length);
  expect(announcedLog(audit.output())).toEqual(firstLog);
  expect(before?.startsWith(`${firstLog.origin}\n`)).toBe(true);
  const offline = await verifyOffline(mesh.auditDb, firstLog, before ?? '');
  expect(offline).toMatchObject({ ok: true });
  expect(offline.treeSize).toBeGreaterThanOrEqual(logged.length);
  process.stdout.write(
    `audit-kill: ${records.length} calls (${summary(records)}), ${inFlight.length} in flight at the kill ` +
      `(${summary(inFlight)}), ${outage.length} in the outage; ${answered.length} answered, ` +
      `${logged.length} logged (${loggedNotAnswered.length} committed but unacknowledged at the kill, ` +
      `${withheld.length} withhold records); ` +
      `audit ready ${(readyAt - restartAt).toFixed(0)} ms after restart, first answer ` +
      `${(firstOk - readyAt).toFixed(0)} ms after ready\n`,
  );
}, 120_000);
