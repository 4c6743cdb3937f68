/**
 * The inference service end to end with real parts: mTLS mesh servers, the real policy and
 * audit services, demo models built and signed at run time, onnxruntime. Each refusal is
 * tried from the caller's side and must come back with its precise status and be audited.
 */
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import type { ModelInferRequest, ModelInferResponse } from '../gen/inference/grpc_service.ts';
import { leafToRecord } from '../services/audit/record.ts';
import { emptyContents } from '../services/inference/tensor/codec.ts';
import {
  GRPCInferenceServiceClient,
  startInferenceStack,
  type InferenceStack,
} from '../services/inference/testing.ts';

let stack: InferenceStack;
let client: GRPCInferenceServiceClient;
let partnerClient: GRPCInferenceServiceClient;

beforeAll(async () => {
  stack = await startInferenceStack({
    service: {
      quotas: {
        low: { ratePerSec: 1000, burst: 1000, dailyBudget: 100_000 },
        high: { ratePerSec: 1000, burst: 1000, dailyBudget: 3 },
      },
      limits: { maxRequestBytes: 4 * 1024 * 1024 },
    },
    grpcOptions: { 'grpc.max_receive_message_length': 80 * 1024 * 1024 },
  });
  client = stack.tlsClient(GRPCInferenceServiceClient);
  partnerClient = stack.partnerClient(GRPCInferenceServiceClient);
}, 60_000);
afterAll(() => stack?.close());

async function bearer(
  claims: Record<string, unknown> = {},
  opts: Parameters<InferenceStack['idp']['mint']>[1] = {},
) {
  const md = new Metadata();
  md.set(
    'authorization',
    `Bearer ${await stack.idp.mint({ sub: 'acme/bob', org: 'acme', roles: ['analyst'], ...claims }, opts)}`,
  );
  return md;
}

function infer(
  req: Partial<ModelInferRequest>,
  md: Metadata,
  via = client,
): Promise<ModelInferResponse> {
  const full: ModelInferRequest = {
    modelName: 'iris',
    modelVersion: '',
    id: '',
    parameters: {},
    inputs: [],
    outputs: [],
    rawInputContents: [],
    ...req,
  };
  return new Promise((resolve, reject) =>
    via.modelInfer(full, md, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

function irisInput(rows: number[][]) {
  return [
    {
      name: 'input',
      datatype: 'FP32',
      shape: [rows.length, 4],
      parameters: {},
      contents: { ...emptyContents(), fp32Contents: rows.flat() },
    },
  ];
}

async function refused(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as ServiceError;
    return { code: e.code, details: e.details };
  }
  throw new Error('expected the call to be refused');
}

async function lastAuditRecords(n: number) {
  const size = stack.audit.log.size();
  const leaves = await stack.audit.log.query({ startIndex: Math.max(0, size - n), limit: n });
  return leaves.map((l) => leafToRecord(l.data));
}

test('a partner classifies a flower over TLS + token and gets an audit receipt', async () => {
  const res = await infer(
    {
      id: 'req-1',
      inputs: irisInput([
        [5.1, 3.5, 1.4, 0.2],
        [6.7, 3.0, 5.2, 2.3],
      ]),
    },
    await bearer(),
  );
  expect(res.id).toBe('req-1');
  expect(res.modelVersion).toBe('1');
  const label = res.outputs.find((o) => o.name === 'label')!;
  expect(label.contents!.int64Contents).toEqual([0, 2]);
  const probs = res.outputs.find((o) => o.name === 'probabilities')!.contents!.fp32Contents;
  expect(probs).toHaveLength(6);
  // Output policy: rounded to 4 digits.
  for (const p of probs) expect(Math.abs(p * 1e4 - Math.round(p * 1e4))).toBeLessThan(1e-2);
  expect(res.parameters['bulwark.audit.log_id']?.parameterChoice).toEqual({
    $case: 'stringParam',
    value: 'bulwark.local/audit',
  });
  const leaf = res.parameters['bulwark.audit.leaf_index']?.parameterChoice;
  expect(leaf?.$case).toBe('int64Param');
  const [record] = await lastAuditRecords(1);
  expect(record).toMatchObject({
    service: 'inference',
    action: 'infer',
    actor: { sub: 'acme/bob', org: 'acme' },
    target: { modelName: 'iris', modelVersion: '1' },
  });
  expect(record!.inputDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
  expect(record!.outputDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
  expect(record!.policyRevision).toBe(stack.policy.store.revision);
});

test('ModelReady and ModelMetadata need a token; label-only models do not list their scores', async () => {
  const md = await bearer();
  const ready = await new Promise<{ ready: boolean }>((resolve, reject) =>
    client.modelReady({ name: 'iris', version: '' }, md, (e, r) => (e ? reject(e) : resolve(r))),
  );
  expect(ready.ready).toBe(true);
  const missing = await new Promise<{ ready: boolean }>((resolve, reject) =>
    client.modelReady({ name: 'nope', version: '' }, md, (e, r) => (e ? reject(e) : resolve(r))),
  );
  expect(missing.ready).toBe(false);
  const meta = await new Promise<{
    platform: string;
    inputs: unknown[];
    outputs: { name: string }[];
  }>((resolve, reject) =>
    client.modelMetadata({ name: 'iris', version: '' }, md, (e, r) => (e ? reject(e) : resolve(r))),
  );
  expect(meta.platform).toBe('onnxruntime_onnx');
  expect(meta.inputs).toEqual([{ name: 'input', datatype: 'FP32', shape: [-1, 4] }]);
  expect(meta.outputs.map((o) => o.name)).toEqual(['probabilities', 'label']);
  const anonymous = await refused(
    new Promise((resolve, reject) =>
      client.modelMetadata({ name: 'iris', version: '' }, new Metadata(), (e, r) =>
        e ? reject(e) : resolve(r),
      ),
    ),
  );
  expect(anonymous.code).toBe(status.UNAUTHENTICATED);
  const { certificateThumbprint } = await import('../mesh/ca/index.ts');
  const { X509Certificate } = await import('node:crypto');
  const thumb = certificateThumbprint({
    raw: new X509Certificate(stack.partner.certPem).raw,
  } as never);
  const alice = await bearer({ sub: 'acme/alice', acr: 'mfa', cnf: { 'x5t#S256': thumb } });
  const credit = await new Promise<{ outputs: { name: string }[] }>((resolve, reject) =>
    partnerClient.modelMetadata({ name: 'credit', version: '' }, alice, (e, r) =>
      e ? reject(e) : resolve(r),
    ),
  );
  expect(credit.outputs.map((o) => o.name)).toEqual(['label']);
});

test('raw input contents get raw output contents', async () => {
  const raw = Buffer.alloc(16);
  [6.0, 2.2, 4.0, 1.0].forEach((v, i) => raw.writeFloatLE(v, i * 4));
  const res = await infer(
    {
      inputs: [
        { name: 'input', datatype: 'FP32', shape: [1, 4], parameters: {}, contents: undefined },
      ],
      rawInputContents: [raw],
      outputs: [{ name: 'label', parameters: {} }],
    },
    await bearer(),
  );
  expect(res.outputs.map((o) => o.name)).toEqual(['label']);
  expect(res.rawOutputContents).toHaveLength(1);
  expect(res.rawOutputContents[0]!.readBigInt64LE(0)).toBe(1n);
});

test.each([
  [
    'no token',
    async () => new Metadata(),
    status.UNAUTHENTICATED,
    'missing or malformed bearer token',
  ],
  [
    'an expired token',
    async () => bearer({}, { now: new Date(Date.now() - 3_600_000) }),
    status.UNAUTHENTICATED,
    'token has expired',
  ],
  [
    'a token for another audience',
    async () => bearer({}, { audience: 'urn:bulwark:audit' }),
    status.UNAUTHENTICATED,
    'token audience is not urn:bulwark:inference',
  ],
  [
    'a token without model:infer',
    async () => bearer({ scope: 'audit:read' }),
    status.PERMISSION_DENIED,
    'token lacks the model:infer scope',
  ],
])('refuses %s', async (_what, md, code, details) => {
  const before = (await lastAuditRecords(1))[0]?.id;
  expect(await refused(infer({ inputs: irisInput([[5, 3, 1, 0.2]]) }, await md()))).toEqual({
    code,
    details,
  });
  const [record] = await lastAuditRecords(1);
  expect(record!.id).not.toBe(before);
  expect(record!.outcome).toBe(2); // OUTCOME_DENIED
});

test('refuses an unbound token from a partner certificate, accepts a bound one', async () => {
  const refusal = await refused(
    infer({ inputs: irisInput([[5, 3, 1, 0.2]]) }, await bearer(), partnerClient),
  );
  expect(refusal).toEqual({
    code: status.UNAUTHENTICATED,
    details: 'this client must use a token bound to its certificate (RFC 8705)',
  });
  const { certificateThumbprint } = await import('../mesh/ca/index.ts');
  const { X509Certificate } = await import('node:crypto');
  const thumb = certificateThumbprint({
    raw: new X509Certificate(stack.partner.certPem).raw,
  } as never);
  const res = await infer(
    { inputs: irisInput([[5, 3, 1, 0.2]]) },
    await bearer({ cnf: { 'x5t#S256': thumb } }),
    partnerClient,
  );
  expect(res.outputs.length).toBeGreaterThan(0);
});

test('policy refuses globex on the credit model; acme credit officers get hardened label-only answers', async () => {
  const row = [[80, 0.3, 40, 0, 10]];
  const input = [
    {
      name: 'input',
      datatype: 'FP32',
      shape: [1, 5],
      parameters: {},
      contents: { ...emptyContents(), fp32Contents: row.flat() },
    },
  ];
  const globex = await bearer({ sub: 'globex/grace', org: 'globex' });
  expect(await refused(infer({ modelName: 'credit', inputs: input }, globex))).toMatchObject({
    code: status.PERMISSION_DENIED,
  });
  const { certificateThumbprint } = await import('../mesh/ca/index.ts');
  const { X509Certificate } = await import('node:crypto');
  const thumb = certificateThumbprint({
    raw: new X509Certificate(stack.partner.certPem).raw,
  } as never);
  const alice = await bearer({ sub: 'acme/alice', acr: 'mfa', cnf: { 'x5t#S256': thumb } });
  const res = await infer({ modelName: 'credit', inputs: input }, alice, partnerClient);
  expect(res.outputs.map((o) => o.name)).toEqual(['label']);
  expect(res.parameters['bulwark.privacy.epsilon_spent']?.parameterChoice).toEqual({
    $case: 'doubleParam',
    value: 0.5,
  });
  // The high tier's daily budget in this stack is 3 requests.
  await infer({ modelName: 'credit', inputs: input }, alice, partnerClient);
  await infer({ modelName: 'credit', inputs: input }, alice, partnerClient);
  expect(
    await refused(infer({ modelName: 'credit', inputs: input }, alice, partnerClient)),
  ).toEqual({
    code: status.RESOURCE_EXHAUSTED,
    details: 'daily budget of 3 requests for model credit is used up; it resets at 00:00 UTC',
  });
});

test.each([
  [
    'a wrong dtype',
    { inputs: [{ ...irisInput([[5, 3, 1, 0.2]])[0]!, datatype: 'FP64' }] },
    status.INVALID_ARGUMENT,
    'input "input": datatype "FP64" does not match the model (FP32)',
  ],
  [
    'a shape mismatch',
    { inputs: [{ ...irisInput([[5, 3, 1, 0.2]])[0]!, shape: [2, 2] }] },
    status.INVALID_ARGUMENT,
    'input "input": shape [2,2] does not match the model\'s [-1,4] at dimension 1',
  ],
  [
    'a negative dimension',
    { inputs: [{ ...irisInput([[5, 3, 1, 0.2]])[0]!, shape: [-1, 4] }] },
    status.INVALID_ARGUMENT,
    'input "input": dimension -1 in shape [-1,4] is negative or not an integer',
  ],
  [
    'a huge dimension',
    { inputs: [{ ...irisInput([[5, 3, 1, 0.2]])[0]!, shape: [2 ** 40, 4] }] },
    status.INVALID_ARGUMENT,
    `input "input": dimension ${2 ** 40} exceeds the limit of 1048576`,
  ],
  [
    'NaN',
    { inputs: irisInput([[5, NaN, 1, 0.2]]) },
    status.INVALID_ARGUMENT,
    'input "input": element 1 is NaN; this model does not accept NaN or Infinity',
  ],
  [
    'a value out of range',
    { inputs: irisInput([[5, 3, 1, 99]]) },
    status.INVALID_ARGUMENT,
    'input "input": element 3 (99) is outside the allowed range [0, 30]',
  ],
  [
    'both contents and raw contents',
    { inputs: irisInput([[5, 3, 1, 0.2]]), rawInputContents: [Buffer.alloc(16)] },
    status.INVALID_ARGUMENT,
    'input "input": both contents and raw_input_contents are set; use one',
  ],
  ['an unknown model', { modelName: 'gpt' }, status.NOT_FOUND, 'model gpt is not registered'],
  ['an unknown version', { modelVersion: '7' }, status.NOT_FOUND, 'model iris has no version 7'],
  [
    'a model name with ../',
    { modelName: '../../etc/passwd' },
    status.INVALID_ARGUMENT,
    'model name "../../etc/passwd" is not a valid name',
  ],
] as const)(
  'refuses %s with a precise status, and audits it',
  async (_what, req, code, details) => {
    expect(
      await refused(
        infer(
          { inputs: irisInput([[5, 3, 1, 0.2]]), ...req } as Partial<ModelInferRequest>,
          await bearer(),
        ),
      ),
    ).toEqual({ code, details });
    const [record] = await lastAuditRecords(1);
    expect(record!.outcome).toBe(2);
    expect(record!.attributes['detail']).toBe(details);
  },
);

test('a dimension beyond 2^53 (undecodable as a JS number) is INVALID_ARGUMENT and audited, not a bare INTERNAL', async () => {
  // Hand-encoded ModelInferRequest: model_name "iris", one input with shape [2^60, 4].
  const w = new BinaryWriter();
  w.tag(1, WireType.LengthDelimited).string('iris');
  w.tag(5, WireType.LengthDelimited).fork();
  w.tag(1, WireType.LengthDelimited).string('input');
  w.tag(2, WireType.LengthDelimited).string('FP32');
  w.tag(3, WireType.LengthDelimited)
    .fork()
    .int64(2n ** 60n)
    .int64(4)
    .join();
  w.join();
  const bytes = Buffer.from(w.finish());
  const md = await bearer();
  const refusal = await new Promise<{ code: number; details: string }>((resolve) => {
    client.makeUnaryRequest(
      '/inference.GRPCInferenceService/ModelInfer',
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      md,
      (err) => resolve({ code: err?.code ?? 0, details: err?.details ?? '' }),
    );
  });
  expect(refusal).toEqual({
    code: status.INVALID_ARGUMENT,
    details:
      'request is not a valid ModelInferRequest: an int64 field (e.g. a shape dimension) is beyond ±(2^53 - 1)',
  });
  const [record] = await lastAuditRecords(1);
  expect(record).toMatchObject({
    outcome: 2,
    reason: 'ERR_INFERENCE_INVALID_INPUT',
    actor: { sub: 'acme/bob' },
  });
});

test('refuses a 64 MiB request over the configured limit', async () => {
  const huge = Buffer.alloc(64 * 1024 * 1024);
  const req = {
    inputs: [
      {
        name: 'input',
        datatype: 'FP32',
        shape: [4_194_304, 4],
        parameters: {},
        contents: undefined,
      },
    ],
    rawInputContents: [huge],
  };
  expect(await refused(infer(req, await bearer()))).toEqual({
    code: status.INVALID_ARGUMENT,
    details: `request carries ${64 * 1024 * 1024} bytes of tensor data; the limit is ${4 * 1024 * 1024}`,
  });
});

test('when the audit service is down nothing is answered: UNAVAILABLE', async () => {
  await stack.stopAudit();
  expect(await refused(infer({ inputs: irisInput([[5, 3, 1, 0.2]]) }, await bearer()))).toEqual({
    code: status.UNAVAILABLE,
    details: 'audit service unavailable: the request was not answered',
  });
});
