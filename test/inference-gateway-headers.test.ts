/**
 * The attacker's side of the gateway headers. Behind Envoy, ext_authz decides on
 * `x-bulwark-model`, `x-bulwark-model-version` and `x-bulwark-batch-size`, which the client
 * itself sends: a client that names an allowed model (or a small batch) in the headers and
 * something else in the body must be refused by inference (INVALID_ARGUMENT, audited). And the
 * identity headers ext_authz adds (`x-bulwark-subject`, `x-bulwark-org`) must never be believed
 * when a caller sends them directly.
 */
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

beforeAll(async () => {
  stack = await startInferenceStack();
  client = stack.tlsClient(GRPCInferenceServiceClient);
}, 60_000);
afterAll(() => stack?.close());

async function metadata(claims: Record<string, unknown>, headers: Record<string, string[]> = {}) {
  const md = new Metadata();
  md.set('authorization', `Bearer ${await stack.idp.mint(claims)}`);
  for (const [k, values] of Object.entries(headers)) for (const v of values) md.add(k, v);
  return md;
}
const bob = { sub: 'acme/bob', org: 'acme', roles: ['analyst'] };

function request(rows: number, req: Partial<ModelInferRequest> = {}): ModelInferRequest {
  return {
    modelName: 'iris',
    modelVersion: '',
    id: 'attacker',
    parameters: {},
    inputs: [
      {
        name: 'input',
        datatype: 'FP32',
        shape: [rows, 4],
        parameters: {},
        contents: { ...emptyContents(), fp32Contents: new Array<number>(rows * 4).fill(1) },
      },
    ],
    outputs: [],
    rawInputContents: [],
    ...req,
  };
}

function call(req: ModelInferRequest, md: Metadata): Promise<ModelInferResponse> {
  return new Promise((resolve, reject) =>
    client.modelInfer(req, md, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

async function refusal(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (err) {
    return { code: (err as ServiceError).code, details: (err as ServiceError).details };
  }
  throw new Error('expected a refusal');
}

async function lastRecord() {
  const size = stack.audit.log.size();
  const [leaf] = await stack.audit.log.query({ startIndex: size - 1, limit: 1 });
  return leafToRecord(leaf!.data);
}

test.each([
  [
    'another model in the header than in the body',
    { 'x-bulwark-model': ['iris'] },
    request(1, { modelName: 'credit' }),
    'header x-bulwark-model "iris" differs from model_name "credit"',
  ],
  [
    'another version in the header than in the body',
    { 'x-bulwark-model': ['iris'], 'x-bulwark-model-version': ['1'] },
    request(1, { modelVersion: '2' }),
    'header x-bulwark-model-version "1" differs from model_version "2"',
  ],
  [
    'a version in the header while the body lets the service choose',
    { 'x-bulwark-model-version': ['1'] },
    request(1),
    'header x-bulwark-model-version "1" differs from model_version ""',
  ],
  [
    'a small batch in the header and a big one in the body',
    { 'x-bulwark-batch-size': ['1'] },
    request(32),
    'header x-bulwark-batch-size "1" differs from the batch size of the inputs (32)',
  ],
  [
    'a batch size that is not a number',
    { 'x-bulwark-batch-size': ['1e1'] },
    request(10),
    'header x-bulwark-batch-size "1e1" differs from the batch size of the inputs (10)',
  ],
  [
    'the model header twice (the gateway may have read the other one)',
    { 'x-bulwark-model': ['iris', 'credit'] },
    request(1),
    'header x-bulwark-model sent more than once',
  ],
])('refuses %s, audited', async (_name, headers, req, details) => {
  const res = await refusal(call(req, await metadata(bob, headers)));
  expect(res).toEqual({ code: status.INVALID_ARGUMENT, details });
  const record = await lastRecord();
  expect(record).toMatchObject({
    service: 'inference',
    action: 'infer',
    reason: 'ERR_INFERENCE_INVALID_INPUT',
    actor: { sub: 'acme/bob', org: 'acme' },
    attributes: { detail: details },
  });
});

test('headers that agree with the body are served', async () => {
  const res = await call(
    request(3, { modelVersion: '1' }),
    await metadata(bob, {
      'x-bulwark-model': ['iris'],
      'x-bulwark-model-version': ['1'],
      'x-bulwark-batch-size': ['3'],
    }),
  );
  expect(res.modelVersion).toBe('1');
  expect(res.outputs.find((o) => o.name === 'label')!.shape).toEqual([3]);
});

test('identity headers sent by the caller are never believed', async () => {
  // globex may not use the credit model; claiming to be an acme credit officer in headers
  // changes nothing: the decision and the audit record follow the token.
  const forged = {
    'x-bulwark-subject': ['acme/alice'],
    'x-bulwark-org': ['acme'],
    'x-bulwark-policy-revision': ['forged'],
  };
  const grace = { sub: 'globex/grace', org: 'globex', roles: ['analyst'] };
  const credit = request(1, {
    modelName: 'credit',
    inputs: [
      {
        name: 'input',
        datatype: 'FP32',
        shape: [1, 5],
        parameters: {},
        contents: { ...emptyContents(), fp32Contents: [80, 0.3, 40, 0, 10] },
      },
    ],
  });
  expect((await refusal(call(credit, await metadata(grace, forged)))).code).toBe(
    status.PERMISSION_DENIED,
  );
  expect(await lastRecord()).toMatchObject({
    actor: { sub: 'globex/grace', org: 'globex' },
    reason: 'ERR_INFERENCE_PERMISSION_DENIED',
  });
  // Without a token the headers alone authenticate nobody.
  const bare = new Metadata();
  for (const [k, [v]] of Object.entries(forged)) bare.set(k, v!);
  expect((await refusal(call(request(1), bare))).code).toBe(status.UNAUTHENTICATED);
  expect((await lastRecord()).actor).toMatchObject({ sub: 'anonymous', org: '' });
  // A served call is recorded under the token's subject, whatever the headers say.
  await call(request(1), await metadata(bob, forged));
  const served = await lastRecord();
  expect(served.actor).toMatchObject({ sub: 'acme/bob', org: 'acme' });
  expect(served.policyRevision).toBe(stack.policy.store.revision);
});
