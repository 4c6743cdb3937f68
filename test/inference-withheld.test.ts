/**
 * Lost audit acknowledgements, with the real audit service: the record of an answer reaches
 * the log but its acknowledgement is lost on the way back (the connection drops). The caller
 * is told UNAVAILABLE; the log must not keep saying "success" alone: once audit answers again,
 * inference appends a withhold record referring to it. The queue survives a restart of
 * inference before delivery.
 */
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { pino } from 'pino';
import type { ModelInferRequest, ModelInferResponse } from '../gen/inference/grpc_service.ts';
import { leafToRecord } from '../services/audit/record.ts';
import { loadTrustedKey } from '../services/inference/bundle/signing.ts';
import type { AuditClient } from '../services/inference/guards/audit-guard.ts';
import { WITHHELD_REASON } from '../services/inference/guards/withheld-answers.ts';
import { createInferenceService } from '../services/inference/server/create-inference-service.ts';
import { emptyContents } from '../services/inference/tensor/codec.ts';
import {
  GRPCInferenceServiceClient,
  startInferenceStack,
  type InferenceStack,
} from '../services/inference/testing.ts';

/** How the wrapped audit client behaves: pass, store-then-drop the answer, or be unreachable. */
let mode: 'pass' | 'lose-ack' | 'down' = 'pass';
let real: AuditClient;
const dropped = () =>
  Object.assign(new Error('Connection dropped'), {
    code: status.UNAVAILABLE,
    details: 'Connection dropped',
    metadata: new Metadata(),
  });

let stack: InferenceStack;
let client: GRPCInferenceServiceClient;

beforeAll(async () => {
  stack = await startInferenceStack({
    wrapAudit: (inner) => {
      real = inner;
      return {
        async append(record) {
          if (mode === 'down') throw dropped();
          const receipt = await inner.append(record);
          if (mode === 'lose-ack') throw dropped();
          return receipt;
        },
      };
    },
  });
  client = stack.tlsClient(GRPCInferenceServiceClient);
}, 60_000);
afterAll(() => stack?.close());

async function infer(id: string): Promise<ModelInferResponse> {
  const md = new Metadata();
  md.set(
    'authorization',
    `Bearer ${await stack.idp.mint({ sub: 'acme/bob', org: 'acme', roles: ['analyst'] })}`,
  );
  const req: ModelInferRequest = {
    modelName: 'iris',
    modelVersion: '',
    id,
    parameters: {},
    inputs: [
      {
        name: 'input',
        datatype: 'FP32',
        shape: [1, 4],
        parameters: {},
        contents: { ...emptyContents(), fp32Contents: [5.1, 3.5, 1.4, 0.2] },
      },
    ],
    outputs: [],
    rawInputContents: [],
  };
  return new Promise((resolve, reject) =>
    client.modelInfer(req, md, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

async function records() {
  const leaves = await stack.audit.log.query({ startIndex: 0, limit: 10_000 });
  return leaves.map((l) => leafToRecord(l.data));
}
const ofRequest = async (id: string) =>
  (await records()).filter((r) => r.attributes['request_id'] === id);

async function until(check: () => Promise<boolean>, ms = 10_000) {
  const end = Date.now() + ms;
  while (!(await check()) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
}

test('an answer logged as success but never acknowledged is followed by a withhold record', async () => {
  mode = 'lose-ack';
  const err = (await infer('lost-1').then(
    () => undefined,
    (e: unknown) => e,
  )) as ServiceError;
  expect(err.code).toBe(status.UNAVAILABLE);
  expect(err.details).toBe('audit service unavailable: the request was not answered');
  // The log already holds the answer's record: alone, it would say the caller was answered.
  const [original] = await ofRequest('lost-1');
  expect(original?.reason).not.toBe(WITHHELD_REASON);
  expect(stack.service.withheld.size()).toBe(1);
  mode = 'pass';
  await until(async () => stack.service.withheld.size() === 0);
  expect(stack.service.withheld.size()).toBe(0);
  const [first, ...notes] = await ofRequest('lost-1');
  expect(first!.id).toBe(original!.id);
  // At least once (a note whose own acknowledgement was lost is sent again).
  expect(notes.length).toBeGreaterThanOrEqual(1);
  for (const note of notes) {
    expect(note).toMatchObject({
      service: 'inference',
      action: 'infer',
      reason: WITHHELD_REASON,
      traceId: original!.traceId,
      actor: { sub: 'acme/bob', org: 'acme' },
      target: { modelName: 'iris', modelVersion: '1' },
      attributes: { request_id: 'lost-1', withholds: original!.id },
    });
    expect(note.outcome).not.toBe(original!.outcome);
  }
  // A normal answer afterwards gets no withhold record.
  const ok = await infer('fine-1');
  expect(ok.id).toBe('fine-1');
  expect(await ofRequest('fine-1')).toHaveLength(1);
});

test('nothing is lost when inference restarts before delivering the queue', async () => {
  mode = 'lose-ack';
  await expect(infer('lost-2')).rejects.toMatchObject({ code: status.UNAVAILABLE });
  await expect(infer('lost-3')).rejects.toMatchObject({ code: status.UNAVAILABLE });
  mode = 'down';
  expect(await stack.service.withheld.drain()).toBe(2);
  // Another inference process over the same state directory, with audit reachable again.
  const again = createInferenceService({
    trustedSignerKeys: [loadTrustedKey(stack.signer.publicKeyPem)],
    tokens: { issuer: stack.idp.issuer, keys: stack.idp.keys },
    policy: { decide: () => Promise.reject(new Error('not needed')) },
    audit: real,
    withheldFile: stack.withheldFile,
    logger: pino({ level: 'silent' }),
  });
  try {
    await again.start();
    expect(again.withheld.size()).toBe(2);
    await until(async () => again.withheld.size() === 0);
    for (const id of ['lost-2', 'lost-3']) {
      const [original, ...notes] = await ofRequest(id);
      expect(notes.length).toBeGreaterThanOrEqual(1);
      for (const note of notes)
        expect(note).toMatchObject({
          reason: WITHHELD_REASON,
          attributes: { request_id: id, withholds: original!.id },
        });
    }
  } finally {
    await again.close();
    mode = 'pass';
  }
});
