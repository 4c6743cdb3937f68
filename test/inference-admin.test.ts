/**
 * Model administration end to end: register a signed bundle over gRPC, canary traffic that is
 * weighted and sticky per subject, promote, instant rollback; every change audited; refusals
 * for a tampered bundle, a caller without `model:admin` and a policy that says no. Also the
 * extraction monitor over the wire and a fast-check fuzz of ModelInfer.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import fc from 'fast-check';
import type {
  ListModelsResponse,
  ModelServiceClient as ModelClient,
  PromoteModelResponse,
  RegisterModelResponse,
  RollbackModelResponse,
  SetCanaryResponse,
} from '../gen/bulwark/model/v1/model.ts';
import type { ModelInferRequest, ModelInferResponse } from '../gen/inference/grpc_service.ts';
import { leafToRecord } from '../services/audit/record.ts';
import { emptyContents } from '../services/inference/tensor/codec.ts';
import {
  GRPCInferenceServiceClient,
  ModelServiceClient,
  startInferenceStack,
  type InferenceStack,
} from '../services/inference/testing.ts';

let stack: InferenceStack;
let admin: ModelClient;
let inference: GRPCInferenceServiceClient;

beforeAll(async () => {
  stack = await startInferenceStack({
    service: {
      quotas: { low: { ratePerSec: 10_000, burst: 10_000, dailyBudget: 1_000_000 } },
      extraction: { minSamples: 40, testEvery: 5, throttleAfter: 3, blockAfter: 1000 },
    },
  });
  admin = stack.tlsClient(ModelServiceClient);
  inference = stack.tlsClient(GRPCInferenceServiceClient);
}, 60_000);
afterAll(() => stack?.close());

async function md(sub: string, scope: string, extra: Record<string, unknown> = {}) {
  const m = new Metadata();
  const org = sub.split('/')[0]!;
  m.set('authorization', `Bearer ${await stack.idp.mint({ sub, org, scope, ...extra })}`);
  return m;
}

function call<Req, Res = unknown>(
  fn: unknown,
  client: object,
  req: Req,
  m: Metadata,
): Promise<Res> {
  const method = fn as (
    r: Req,
    m: Metadata,
    cb: (e: ServiceError | null, r: Res) => void,
  ) => unknown;
  return new Promise((resolve, reject) =>
    method.call(client, req, m, (e, r) => (e ? reject(e) : resolve(r))),
  );
}

async function refused(p: Promise<unknown>) {
  try {
    await p;
  } catch (err) {
    return { code: (err as ServiceError).code, details: (err as ServiceError).details };
  }
  throw new Error('expected a refusal');
}

async function bundleFiles(name: string, version: string) {
  const dir = path.join(stack.demoDir, name, version);
  return Promise.all(
    ['manifest.json', 'manifest.sig', 'model.onnx'].map(async (p) => ({
      path: p,
      content: await readFile(path.join(dir, p)),
    })),
  );
}

async function lastRecords(n: number) {
  const size = stack.audit.log.size();
  return (await stack.audit.log.query({ startIndex: Math.max(0, size - n), limit: n })).map((l) =>
    leafToRecord(l.data),
  );
}

const ops = () => md('acme/ops', 'model:admin');
const inferAs = (sub: string, req: Partial<ModelInferRequest>) =>
  md(sub, 'model:infer', { roles: ['analyst'] }).then((m) =>
    call<ModelInferRequest, ModelInferResponse>(
      inference.modelInfer,
      inference,
      {
        modelName: 'iris',
        modelVersion: '',
        id: '',
        parameters: {},
        outputs: [],
        rawInputContents: [],
        inputs: [],
        ...req,
      },
      m,
    ),
  );
const flower = (rows: number[][]) => [
  {
    name: 'input',
    datatype: 'FP32',
    shape: [rows.length, 4],
    parameters: {},
    contents: { ...emptyContents(), fp32Contents: rows.flat() },
  },
];

test('register refuses a tampered bundle with the reason, and a caller without model:admin', async () => {
  const files = await bundleFiles('iris', '2');
  const model = files.find((f) => f.path === 'model.onnx')!;
  const tampered = Buffer.from(model.content);
  tampered.writeUInt8(tampered.readUInt8(100) ^ 1, 100);
  const bad = files.map((f) => (f.path === 'model.onnx' ? { ...f, content: tampered } : f));
  expect(
    await refused(
      call<object, RegisterModelResponse>(
        admin.registerModel,
        admin,
        { files: bad, makeStable: false },
        await ops(),
      ),
    ),
  ).toEqual({
    code: status.FAILED_PRECONDITION,
    details: 'SHA-256 of model.onnx does not match the manifest',
  });
  const [record] = await lastRecords(1);
  expect(record).toMatchObject({
    action: 'model.register',
    outcome: 2,
    reason: 'ERR_BUNDLE_DIGEST',
  });
  expect(
    await refused(
      call<object, RegisterModelResponse>(
        admin.registerModel,
        admin,
        { files, makeStable: false },
        await md('acme/bob', 'model:infer'),
      ),
    ),
  ).toEqual({
    code: status.PERMISSION_DENIED,
    details: 'token lacks the model:admin scope',
  });
  // globex has no admin rule in the policy.
  expect(
    (
      await refused(
        call<object, ListModelsResponse>(
          admin.listModels,
          admin,
          {},
          await md('globex/grace', 'model:admin'),
        ),
      )
    ).code,
  ).toBe(status.PERMISSION_DENIED);
});

test('register, canary (weighted, sticky per subject), promote and rollback, each audited', async () => {
  const reg = await call<object, RegisterModelResponse>(
    admin.registerModel,
    admin,
    { files: await bundleFiles('iris', '2'), makeStable: false },
    await ops(),
  );
  expect(reg.model).toMatchObject({ name: 'iris', stableVersion: '1' });
  expect(reg.version?.version).toBe('2');
  expect((await lastRecords(1))[0]).toMatchObject({
    action: 'model.register',
    outcome: 1,
    target: { modelName: 'iris', modelVersion: '2' },
  });

  const canary = await call<object, SetCanaryResponse>(
    admin.setCanary,
    admin,
    { name: 'iris', canaryVersion: '2', percent: 50 },
    await ops(),
  );
  expect(canary.model).toMatchObject({ canaryVersion: '2', canaryPercent: 50 });
  expect((await lastRecords(1))[0]).toMatchObject({
    action: 'model.canary',
    attributes: { canary: '2', canary_percent: '50' },
  });

  const users = Array.from({ length: 24 }, (_, i) => `acme/user-${i}`);
  const seen = async () =>
    Promise.all(
      users.map(
        async (u) => (await inferAs(u, { inputs: flower([[5, 3, 1.5, 0.2]]) })).modelVersion,
      ),
    );
  const first = await seen();
  expect(new Set(first)).toEqual(new Set(['1', '2']));
  expect(await seen()).toEqual(first); // sticky

  const promoted = await call<object, PromoteModelResponse>(
    admin.promoteModel,
    admin,
    { name: 'iris', version: '' },
    await ops(),
  );
  expect(promoted.model).toMatchObject({
    stableVersion: '2',
    canaryVersion: '',
    previousStableVersion: '1',
  });
  expect((await seen()).every((v) => v === '2')).toBe(true);

  const rolled = await call<object, RollbackModelResponse>(
    admin.rollbackModel,
    admin,
    { name: 'iris' },
    await ops(),
  );
  expect(rolled.model).toMatchObject({ stableVersion: '1' });
  expect((await seen()).every((v) => v === '1')).toBe(true);
  expect((await lastRecords(200)).filter((r) => r.eventType === 4).map((r) => r.action)).toEqual(
    expect.arrayContaining(['model.register', 'model.canary', 'model.promote', 'model.rollback']),
  );
  const list = await call<object, ListModelsResponse>(admin.listModels, admin, {}, await ops());
  expect(list.models.map((m) => m.name)).toEqual(['credit', 'iris']);
});

test('a probing client is flagged and throttled over the wire while a normal client is not', async () => {
  const states = new Set<string>();
  let throttled = 0;
  let normalRefused = 0;
  for (let i = 0; i < 60 && throttled === 0; i++) {
    // Normal client: real flower measurements with a little noise.
    const base = [
      [5.1, 3.5, 1.4, 0.2],
      [6.4, 3.2, 4.5, 1.5],
      [6.3, 3.3, 6.0, 2.5],
    ][i % 3]!;
    try {
      await inferAs('acme/normal', {
        inputs: flower([base.map((v) => v + Math.sin(i * 7.1 + v) * 0.1)]),
      });
    } catch {
      normalRefused++;
    }
    // Prober: a line search in tiny steps, 8 rows per request.
    const rows = Array.from({ length: 8 }, (_, s) => [
      1 + i * 0.05,
      2 + s * 0.001,
      3,
      0.5 + s * 0.0005,
    ]);
    try {
      const res = await inferAs('acme/prober', { inputs: flower(rows) });
      const state = res.parameters['bulwark.extraction.state']?.parameterChoice?.value;
      if (typeof state === 'string') states.add(state);
    } catch (err) {
      const e = err as ServiceError;
      expect(e.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(e.details).toMatch(/looks like model extraction; throttled/);
      throttled++;
    }
  }
  expect(states.has('flagged')).toBe(true);
  expect(throttled).toBe(1);
  expect(normalRefused).toBe(0);
  const actions = (await lastRecords(400)).map((r) => r.action);
  expect(actions).toContain('extraction.flagged');
  expect(actions).toContain('extraction.throttled');
});

test('fuzzed ModelInfer requests get OK or a precise status; the service keeps serving', async () => {
  const token = await md('acme/fuzz', 'model:infer', { roles: ['analyst'] });
  const allowed = new Set([
    status.OK,
    status.INVALID_ARGUMENT,
    status.NOT_FOUND,
    status.RESOURCE_EXHAUSTED,
  ]);
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        modelName: fc.constantFrom('iris', 'credit', '', '../x', 'iris\u0000'),
        modelVersion: fc.constantFrom('', '1', '2', '99', '..'),
        datatype: fc.constantFrom('FP32', 'FP16', 'INT64', 'BYTES', 'BOOL', 'nope'),
        shape: fc.array(fc.integer({ min: -5, max: 70_000 }), { maxLength: 4 }),
        values: fc.array(fc.float(), { maxLength: 16 }),
        raw: fc.option(fc.uint8Array({ maxLength: 96 }), { nil: undefined }),
      }),
      async (r) => {
        try {
          await call<ModelInferRequest, ModelInferResponse>(
            inference.modelInfer,
            inference,
            {
              modelName: r.modelName,
              modelVersion: r.modelVersion,
              id: 'fuzz',
              parameters: {},
              outputs: [],
              inputs: [
                {
                  name: 'input',
                  datatype: r.datatype,
                  shape: r.shape,
                  parameters: {},
                  contents: r.raw ? undefined : { ...emptyContents(), fp32Contents: r.values },
                },
              ],
              rawInputContents: r.raw ? [Buffer.from(r.raw)] : [],
            },
            token,
          );
        } catch (err) {
          const e = err as ServiceError;
          if (!allowed.has(e.code) && e.code !== status.PERMISSION_DENIED) {
            throw new Error(`unexpected status ${e.code}: ${e.details}`, { cause: err });
          }
          expect(e.details.length).toBeGreaterThan(0);
        }
      },
    ),
    { numRuns: 100 },
  );
  const ok = await inferAs('acme/bob', { inputs: flower([[5.1, 3.5, 1.4, 0.2]]) });
  expect(ok.outputs.length).toBeGreaterThan(0);
});
