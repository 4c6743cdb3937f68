/**
 * Telemetry on the guarded path: the inference server span, the client spans to policy and
 * audit, and the audit record of the call all carry one trace id.
 */
import { Metadata } from '@grpc/grpc-js';
import type { ModelInferResponse } from '../gen/inference/grpc_service.ts';
import { createTelemetry, type Telemetry } from '../mesh/telemetry/index.ts';
import { leafToRecord } from '../services/audit/record.ts';
import { emptyContents } from '../services/inference/tensor/codec.ts';
import {
  GRPCInferenceServiceClient,
  startInferenceStack,
  type InferenceStack,
} from '../services/inference/testing.ts';

let stack: InferenceStack;
let telemetry: Telemetry;

beforeAll(async () => {
  telemetry = createTelemetry({
    serviceName: 'inference',
    memoryExporter: true,
    processMetrics: false,
    env: {},
  });
  stack = await startInferenceStack({ telemetry });
}, 60_000);
afterAll(async () => {
  await stack?.close();
  await telemetry?.shutdown();
});

test('one trace id covers the ModelInfer span, its policy and audit calls, and the audit record', async () => {
  const client = stack.tlsClient(GRPCInferenceServiceClient);
  const md = new Metadata();
  md.set(
    'authorization',
    `Bearer ${await stack.idp.mint({ sub: 'acme/bob', org: 'acme', roles: ['analyst'] })}`,
  );
  const res = await new Promise<ModelInferResponse>((resolve, reject) =>
    client.modelInfer(
      {
        modelName: 'iris',
        modelVersion: '',
        id: 't',
        parameters: {},
        inputs: [
          {
            name: 'input',
            datatype: 'FP32',
            shape: [1, 4],
            parameters: {},
            contents: { ...emptyContents(), fp32Contents: [5, 3, 1.5, 0.2] },
          },
        ],
        outputs: [],
        rawInputContents: [],
      },
      md,
      (err, r) => (err ? reject(err) : resolve(r)),
    ),
  );
  await telemetry.forceFlush();
  const spans = telemetry.memoryExporter!.getFinishedSpans();
  const server = spans.find((s) => s.name === 'inference.GRPCInferenceService/ModelInfer');
  expect(server).toBeDefined();
  const traceId = server!.spanContext().traceId;
  const children = spans.filter((s) => s.spanContext().traceId === traceId).map((s) => s.name);
  expect(children).toEqual(
    expect.arrayContaining([
      'bulwark.policy.v1.PolicyService/Decide',
      'bulwark.audit.v1.AuditService/Append',
    ]),
  );
  const leaf = res.parameters['bulwark.audit.leaf_index']!.parameterChoice!.value as number;
  const [stored] = await stack.audit.log.query({ startIndex: leaf, limit: 1 });
  expect(leafToRecord(stored!.data).traceId).toBe(traceId);
});
