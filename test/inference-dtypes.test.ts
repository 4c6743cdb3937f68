/**
 * Data types over the wire and through onnxruntime: FP16 (raw only), BOOL, INT64 and BYTES
 * (raw with 4-byte length prefixes, and typed), with a small model built by the project's own
 * ONNX writer and served as a signed bundle.
 */
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import type { ModelInferRequest, ModelInferResponse } from '../gen/inference/grpc_service.ts';
import { MODEL_FILE } from '../services/inference/bundle/manifest.ts';
import { signBundle } from '../services/inference/bundle/bundle-files.ts';
import { encodeOnnxModel, OnnxDataType } from '../services/inference/onnx/onnx-writer.ts';
import { emptyContents } from '../services/inference/tensor/codec.ts';
import { halfToNumber, numberToHalf } from '../services/inference/tensor/datatypes.ts';
import {
  GRPCInferenceServiceClient,
  startInferenceStack,
  type InferenceStack,
} from '../services/inference/testing.ts';

let stack: InferenceStack;
let client: GRPCInferenceServiceClient;
let md: Metadata;

const onnx = encodeOnnxModel({
  opset: 13,
  producerName: 'bulwark-test',
  producerVersion: '0',
  graph: {
    name: 'dtypes',
    initializers: [],
    nodes: [
      {
        opType: 'Cast',
        inputs: ['half'],
        outputs: ['as_float'],
        attributes: [{ name: 'to', int: OnnxDataType.FLOAT }],
      },
      { opType: 'Identity', inputs: ['half'], outputs: ['half_out'] },
      { opType: 'Not', inputs: ['flag'], outputs: ['not_flag'] },
      { opType: 'Identity', inputs: ['ids'], outputs: ['ids_out'] },
      { opType: 'Identity', inputs: ['text'], outputs: ['text_out'] },
    ],
    inputs: [
      { name: 'half', elemType: OnnxDataType.FLOAT16, shape: [-1, 2] },
      { name: 'flag', elemType: OnnxDataType.BOOL, shape: [-1] },
      { name: 'ids', elemType: OnnxDataType.INT64, shape: [-1] },
      { name: 'text', elemType: OnnxDataType.STRING, shape: [-1] },
    ],
    outputs: [
      { name: 'as_float', elemType: OnnxDataType.FLOAT, shape: [-1, 2] },
      { name: 'half_out', elemType: OnnxDataType.FLOAT16, shape: [-1, 2] },
      { name: 'not_flag', elemType: OnnxDataType.BOOL, shape: [-1] },
      { name: 'ids_out', elemType: OnnxDataType.INT64, shape: [-1] },
      { name: 'text_out', elemType: OnnxDataType.STRING, shape: [-1] },
    ],
  },
});

beforeAll(async () => {
  stack = await startInferenceStack();
  // Filed as a version of "iris" so the repository's policy (analysts may run model:iris) applies.
  const files = signBundle(
    {
      schema: 'bulwark.model-manifest/v1',
      name: 'iris',
      version: 'dtypes',
      riskTier: 'low',
      inputs: [
        { name: 'half', datatype: 'FP16', shape: [-1, 2], range: { min: -70000, max: 70000 } },
        { name: 'flag', datatype: 'BOOL', shape: [-1] },
        { name: 'ids', datatype: 'INT64', shape: [-1], range: { min: 0, max: 1e12 } },
        { name: 'text', datatype: 'BYTES', shape: [-1] },
      ],
      outputs: [
        { name: 'as_float', datatype: 'FP32', shape: [-1, 2] },
        { name: 'half_out', datatype: 'FP16', shape: [-1, 2] },
        { name: 'not_flag', datatype: 'BOOL', shape: [-1] },
        { name: 'ids_out', datatype: 'INT64', shape: [-1] },
        { name: 'text_out', datatype: 'BYTES', shape: [-1] },
      ],
    },
    new Map([[MODEL_FILE, onnx]]),
    stack.signer.privateKeyPem,
  );
  await stack.service.registry.commit(await stack.service.registry.prepare(files), false);
  client = stack.tlsClient(GRPCInferenceServiceClient);
  md = new Metadata();
  md.set(
    'authorization',
    `Bearer ${await stack.idp.mint({ sub: 'acme/bob', org: 'acme', roles: ['analyst'] })}`,
  );
}, 60_000);
afterAll(() => stack?.close());

function infer(req: Partial<ModelInferRequest>): Promise<ModelInferResponse> {
  const full = {
    modelName: 'iris',
    modelVersion: 'dtypes',
    id: '',
    parameters: {},
    inputs: [],
    outputs: [],
    rawInputContents: [],
    ...req,
  };
  return new Promise((resolve, reject) =>
    client.modelInfer(full, md, (e, r) => (e ? reject(e) : resolve(r))),
  );
}

function rawBytes(items: string[]): Buffer {
  return Buffer.concat(
    items.flatMap((s) => {
      const len = Buffer.alloc(4);
      len.writeUInt32LE(Buffer.byteLength(s));
      return [len, Buffer.from(s)];
    }),
  );
}

const heads = [
  { name: 'half', datatype: 'FP16', shape: [2, 2], parameters: {}, contents: undefined },
  { name: 'flag', datatype: 'BOOL', shape: [2], parameters: {}, contents: undefined },
  { name: 'ids', datatype: 'INT64', shape: [2], parameters: {}, contents: undefined },
  { name: 'text', datatype: 'BYTES', shape: [2], parameters: {}, contents: undefined },
];

test('raw FP16, BOOL, INT64 and BYTES go through onnxruntime and come back raw', async () => {
  const half = Buffer.alloc(8);
  [1.5, -2, 0.25, 65504].forEach((v, i) => half.writeUInt16LE(numberToHalf(v), i * 2));
  const ids = Buffer.alloc(16);
  ids.writeBigInt64LE(9_007_199_254n, 0);
  ids.writeBigInt64LE(7n, 8);
  const res = await infer({
    inputs: heads,
    rawInputContents: [half, Buffer.from([1, 0]), ids, rawBytes(['héllo', ''])],
  });
  const out = (name: string) =>
    res.rawOutputContents[res.outputs.findIndex((o) => o.name === name)]!;
  expect(res.outputs.find((o) => o.name === 'half_out')).toMatchObject({
    datatype: 'FP16',
    shape: [2, 2],
  });
  expect([0, 1, 2, 3].map((i) => halfToNumber(out('half_out').readUInt16LE(i * 2)))).toEqual([
    1.5, -2, 0.25, 65504,
  ]);
  expect([0, 1, 2, 3].map((i) => out('as_float').readFloatLE(i * 4))).toEqual([
    1.5, -2, 0.25, 65504,
  ]);
  expect([...out('not_flag')]).toEqual([0, 1]);
  expect(out('ids_out').readBigInt64LE(0)).toBe(9_007_199_254n);
  expect(out('text_out').equals(rawBytes(['héllo', '']))).toBe(true);
});

test('FP16 cannot travel as typed contents, and raw and typed contents cannot be mixed', async () => {
  const typed = (name: string, contents: object) => ({
    ...heads.find((h) => h.name === name)!,
    contents: { ...emptyContents(), ...contents },
  });
  const err = await infer({
    inputs: [
      typed('half', { fp32Contents: [1, 2, 3, 4] }),
      typed('flag', { boolContents: [true, false] }),
      typed('ids', { int64Contents: [1, 2] }),
      typed('text', { bytesContents: [Buffer.from('a'), Buffer.from('b')] }),
    ],
  }).catch((e: ServiceError) => e);
  expect((err as ServiceError).details).toBe(
    'input "half": FP16 has no typed contents field; send it as raw contents',
  );
  const half = Buffer.alloc(8);
  [1, 2, 3, 4].forEach((v, i) => half.writeUInt16LE(numberToHalf(v), i * 2));
  // Mixed raw and typed is not allowed either: raw_input_contents covers every input.
  const mixed = await infer({
    inputs: [heads[0]!, typed('flag', { boolContents: [true, false] }), heads[2]!, heads[3]!],
    rawInputContents: [half, Buffer.from([1, 0]), Buffer.alloc(16), rawBytes(['a', 'b'])],
  }).catch((e: ServiceError) => e);
  expect((mixed as ServiceError).details).toBe(
    'input "flag": both contents and raw_input_contents are set; use one',
  );
});
