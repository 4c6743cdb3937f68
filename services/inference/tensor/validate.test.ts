import fc from 'fast-check';
import type { ModelInferRequest } from '../../../gen/inference/grpc_service.ts';
import { errorCode } from '../../../mesh/errors.ts';
import { parseManifest } from '../bundle/manifest.ts';
import { irisTestManifest } from '../bundle/testing.ts';
import { InferenceError } from '../errors.ts';
import { emptyContents } from './codec.ts';
import { DEFAULT_VALIDATION_LIMITS, validateInferRequest } from './validate.ts';

const manifest = parseManifest({ ...irisTestManifest(), files: { 'model.onnx': '0'.repeat(64) } });
const credit = parseManifest({
  ...irisTestManifest('credit'),
  files: { 'model.onnx': '0'.repeat(64) },
  inputs: [
    {
      name: 'input',
      datatype: 'FP32',
      shape: [-1, 2],
      featureRanges: [
        { min: 10, max: 250 },
        { min: 0, max: 1.5 },
      ],
    },
  ],
});

function request(overrides: Partial<ModelInferRequest> = {}): ModelInferRequest {
  return {
    modelName: 'iris',
    modelVersion: '',
    id: 'r1',
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
    ...overrides,
  };
}

function rawRequest(values: number[], shape = [values.length / 4, 4]): ModelInferRequest {
  const raw = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => raw.writeFloatLE(v, i * 4));
  return request({
    inputs: [{ name: 'input', datatype: 'FP32', shape, parameters: {}, contents: undefined }],
    rawInputContents: [raw],
  });
}

function refusal(req: ModelInferRequest, m = manifest, limits = DEFAULT_VALIDATION_LIMITS): string {
  try {
    validateInferRequest(req, m, limits);
  } catch (err) {
    expect(err).toBeInstanceOf(InferenceError);
    expect(errorCode(err)).toBe('ERR_INFERENCE_INVALID_INPUT');
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
}

test('accepts typed and raw requests and resolves outputs', () => {
  const typed = validateInferRequest(request(), manifest);
  expect(typed).toMatchObject({ batch: 1, raw: false, outputs: ['probabilities', 'label'] });
  const raw = validateInferRequest(rawRequest([5.1, 3.5, 1.4, 0.2, 6, 3, 4, 1]), manifest);
  expect(raw.batch).toBe(2);
  expect(raw.raw).toBe(true);
  expect(Array.from(raw.inputs[0]!.data as Float32Array)).toHaveLength(8);
  const one = validateInferRequest(
    request({ outputs: [{ name: 'label', parameters: {} }] }),
    manifest,
  );
  expect(one.outputs).toEqual(['label']);
});

test('refuses a wrong datatype', () => {
  const req = request();
  req.inputs[0]!.datatype = 'FP64';
  expect(refusal(req)).toBe('input "input": datatype "FP64" does not match the model (FP32)');
  req.inputs[0]!.datatype = 'FLOAT';
  expect(refusal(req)).toBe('input "input": datatype "FLOAT" does not match the model (FP32)');
});

test('refuses shape mismatches: rank, fixed dimension, empty or oversized batch', () => {
  expect(refusal(rawRequest([1, 2, 3, 4], [4]))).toBe(
    'input "input": shape [4] has rank 1; the model expects [-1,4]',
  );
  expect(refusal(rawRequest([1, 2, 3, 4, 5, 6], [2, 3]))).toBe(
    'input "input": shape [2,3] does not match the model\'s [-1,4] at dimension 1',
  );
  expect(refusal(rawRequest([], [0, 4]))).toBe(
    'input "input": batch dimension 0 must be at least 1',
  );
  expect(refusal(rawRequest(new Array(36).fill(1), [9, 4]))).toBe(
    'input "input": batch of 9 exceeds the model limit of 8',
  );
});

test('refuses negative and huge dimensions', () => {
  expect(refusal(rawRequest([1, 2, 3, 4], [-1, 4]))).toMatch(
    /dimension -1 in shape \[-1,4\] is negative/,
  );
  expect(refusal(rawRequest([1, 2, 3, 4], [2 ** 40, 4]))).toMatch(/exceeds the limit/);
});

test('refuses raw byte length not matching the shape, and a raw entry count mismatch', () => {
  const req = rawRequest([1, 2, 3, 4]);
  req.rawInputContents = [Buffer.alloc(15)];
  expect(refusal(req)).toBe(
    'input "input": raw contents hold 15 bytes; shape [1,4] of FP32 needs 16',
  );
  req.rawInputContents = [Buffer.alloc(16), Buffer.alloc(16)];
  expect(refusal(req)).toBe('raw_input_contents has 2 entries for 1 inputs');
});

test('refuses both contents and raw contents', () => {
  const req = rawRequest([1, 2, 3, 4]);
  req.inputs[0]!.contents = { ...emptyContents(), fp32Contents: [1, 2, 3, 4] };
  expect(refusal(req)).toBe('input "input": both contents and raw_input_contents are set; use one');
});

test('refuses NaN and Infinity, typed and raw', () => {
  expect(refusal(rawRequest([1, NaN, 3, 4]))).toBe(
    'input "input": element 1 is NaN; this model does not accept NaN or Infinity',
  );
  const req = request();
  req.inputs[0]!.contents!.fp32Contents = [1, 2, Infinity, 4];
  expect(refusal(req)).toMatch(/element 2 is Infinity/);
});

test('refuses values out of the allowed range, per tensor and per feature', () => {
  expect(refusal(rawRequest([1, 2, 3, 31]))).toBe(
    'input "input": element 3 (31) is outside the allowed range [0, 30]',
  );
  const req = request({
    inputs: [
      {
        name: 'input',
        datatype: 'FP32',
        shape: [2, 2],
        parameters: {},
        contents: { ...emptyContents(), fp32Contents: [50, 0.5, 60, 2] },
      },
    ],
  });
  expect(refusal(req, credit)).toBe(
    'input "input": element 3 (2) is outside the allowed range [0, 1.5]',
  );
});

test('refuses unknown, duplicate and missing inputs and unknown outputs', () => {
  const unknown = request();
  unknown.inputs[0]!.name = '../../etc/passwd';
  expect(refusal(unknown)).toBe('input "../../etc/passwd" is not an input of model iris');
  const dup = request();
  dup.inputs.push(dup.inputs[0]!);
  expect(refusal(dup)).toBe('input "input" appears more than once');
  expect(refusal(request({ inputs: [] }))).toBe('input "input" is missing');
  expect(refusal(request({ outputs: [{ name: 'weights', parameters: {} }] }))).toBe(
    'output "weights" is not an output of model iris',
  );
});

test('refuses a request over the byte limit (a 64 MiB raw tensor)', () => {
  const req = rawRequest([1, 2, 3, 4]);
  req.rawInputContents = [Buffer.alloc(64 * 1024 * 1024)];
  expect(refusal(req)).toBe(
    `request carries ${64 * 1024 * 1024} bytes of tensor data; the limit is ${DEFAULT_VALIDATION_LIMITS.maxRequestBytes}`,
  );
});

test('arbitrary requests are either valid or refused with INVALID_ARGUMENT', () => {
  fc.assert(
    fc.property(
      fc.record({
        datatype: fc.constantFrom('FP32', 'FP64', 'INT64', 'BYTES', 'x'),
        shape: fc.array(fc.integer({ min: -2, max: 10 }), { maxLength: 3 }),
        raw: fc.option(fc.uint8Array({ maxLength: 80 })),
        values: fc.array(fc.double(), { maxLength: 12 }),
      }),
      ({ datatype, shape, raw, values }) => {
        const req = request({
          inputs: [
            {
              name: 'input',
              datatype,
              shape,
              parameters: {},
              contents: { ...emptyContents(), fp32Contents: values },
            },
          ],
          rawInputContents: raw ? [Buffer.from(raw)] : [],
        });
        try {
          const ok = validateInferRequest(req, manifest);
          expect(ok.inputs).toHaveLength(1);
        } catch (err) {
          expect(errorCode(err)).toBe('ERR_INFERENCE_INVALID_INPUT');
        }
      },
    ),
    { numRuns: 200 },
  );
});
