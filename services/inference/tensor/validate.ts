/**
 * Validates a `ModelInferRequest` against a model's signed manifest and decodes its inputs:
 * names, datatypes, shapes (fixed dimensions and the batch dimension), batch limit, request
 * byte size, NaN/Inf and allowed value ranges. Every refusal is INVALID_ARGUMENT with a
 * message naming the input and the rule.
 */
import type { ModelInferRequest } from '../../../gen/inference/grpc_service.ts';
import type { ModelManifest, TensorSpec } from '../bundle/manifest.ts';
import { invalidInput } from '../errors.ts';
import {
  decodeRaw,
  decodeTyped,
  type CodecLimits,
  DEFAULT_CODEC_LIMITS,
  type Tensor,
} from './codec.ts';
import { DATATYPE_INFO, halfToNumber, isDatatype, type NumericArray } from './datatypes.ts';

export interface ValidationLimits extends CodecLimits {
  /** Most bytes of tensor data in one request, all inputs together. */
  maxRequestBytes: number;
}

export const DEFAULT_VALIDATION_LIMITS: ValidationLimits = {
  ...DEFAULT_CODEC_LIMITS,
  maxRequestBytes: 4 * 1024 * 1024,
};

export interface ValidatedRequest {
  /** Decoded inputs in manifest order. */
  inputs: Tensor[];
  /** Size of the batch dimension. */
  batch: number;
  /** Output names to return (every manifest output when the request names none). */
  outputs: string[];
  /** Whether the request used raw contents (the response mirrors it). */
  raw: boolean;
}

function requestBytes(req: ModelInferRequest): number {
  let total = req.rawInputContents.reduce((a, b) => a + b.byteLength, 0);
  for (const input of req.inputs) {
    const c = input.contents;
    if (!c) continue;
    total +=
      c.boolContents.length +
      4 * (c.intContents.length + c.uintContents.length + c.fp32Contents.length);
    total += 8 * (c.int64Contents.length + c.uint64Contents.length + c.fp64Contents.length);
    total += c.bytesContents.reduce((a, b) => a + b.byteLength, 0);
  }
  return total;
}

function hasContents(input: ModelInferRequest['inputs'][number]): boolean {
  const c = input.contents;
  return !!c && Object.values(c).some((v) => Array.isArray(v) && v.length > 0);
}

function checkShape(
  what: string,
  spec: TensorSpec,
  shape: number[],
  maxBatch: number,
): number | undefined {
  if (shape.length !== spec.shape.length) {
    throw invalidInput(
      `${what}: shape [${shape.join(',')}] has rank ${shape.length}; the model expects [${spec.shape.join(',')}]`,
    );
  }
  let batch: number | undefined;
  spec.shape.forEach((want, i) => {
    const got = shape[i]!;
    if (want === -1) {
      if (got < 1) throw invalidInput(`${what}: batch dimension ${got} must be at least 1`);
      if (got > maxBatch)
        throw invalidInput(`${what}: batch of ${got} exceeds the model limit of ${maxBatch}`);
      batch = got;
    } else if (got !== want) {
      throw invalidInput(
        `${what}: shape [${shape.join(',')}] does not match the model's [${spec.shape.join(',')}] at dimension ${i}`,
      );
    }
  });
  return batch;
}

function numberAt(t: Tensor, i: number): number {
  const v = (t.data as NumericArray)[i]!;
  if (t.datatype === 'FP16') return halfToNumber(v as number);
  return typeof v === 'bigint' ? Number(v) : v;
}

function checkValues(what: string, spec: TensorSpec, t: Tensor): void {
  if (t.datatype === 'BYTES') return;
  const n = (t.data as NumericArray).length;
  const float = DATATYPE_INFO[t.datatype].float === true;
  const last = t.shape[t.shape.length - 1] ?? 1;
  for (let i = 0; i < n; i++) {
    const v = numberAt(t, i);
    if (float && !Number.isFinite(v)) {
      if (spec.allowNonFinite) continue;
      throw invalidInput(
        `${what}: element ${i} is ${v}; this model does not accept NaN or Infinity`,
      );
    }
    const range = spec.featureRanges?.[i % last] ?? spec.range;
    if (range && (v < range.min || v > range.max)) {
      throw invalidInput(
        `${what}: element ${i} (${v}) is outside the allowed range [${range.min}, ${range.max}]`,
      );
    }
  }
}

/**
 * Validates and decodes a request.
 *
 * @example
 * ```ts
 * const { inputs, outputs } = validateInferRequest(request, bundle.manifest);
 * ```
 */
export function validateInferRequest(
  req: ModelInferRequest,
  manifest: ModelManifest,
  limits: ValidationLimits = DEFAULT_VALIDATION_LIMITS,
): ValidatedRequest {
  const total = requestBytes(req);
  if (total > limits.maxRequestBytes) {
    throw invalidInput(
      `request carries ${total} bytes of tensor data; the limit is ${limits.maxRequestBytes}`,
    );
  }
  const raw = req.rawInputContents.length > 0;
  if (raw && req.rawInputContents.length !== req.inputs.length) {
    throw invalidInput(
      `raw_input_contents has ${req.rawInputContents.length} entries for ${req.inputs.length} inputs`,
    );
  }
  const seen = new Set<string>();
  const byName = new Map<string, Tensor>();
  let batch: number | undefined;
  req.inputs.forEach((input, index) => {
    const what = `input ${JSON.stringify(input.name.slice(0, 64))}`;
    const spec = manifest.inputs.find((s) => s.name === input.name);
    if (!spec) throw invalidInput(`${what} is not an input of model ${manifest.name}`);
    if (seen.has(input.name)) throw invalidInput(`${what} appears more than once`);
    seen.add(input.name);
    if (!isDatatype(input.datatype) || input.datatype !== spec.datatype) {
      throw invalidInput(
        `${what}: datatype ${JSON.stringify(input.datatype.slice(0, 16))} does not match the model (${spec.datatype})`,
      );
    }
    // Dimensions first: a negative or huge dimension is refused before any size arithmetic.
    const head = { name: input.name, datatype: input.datatype, shape: input.shape };
    if (raw && hasContents(input)) {
      throw invalidInput(`${what}: both contents and raw_input_contents are set; use one`);
    }
    const tensor = raw
      ? decodeRaw(what, head, req.rawInputContents[index]!, limits)
      : decodeTyped(what, head, input.contents, limits);
    const b = checkShape(what, spec, input.shape, manifest.maxBatch);
    if (b !== undefined) {
      if (batch !== undefined && b !== batch) {
        throw invalidInput(`${what}: batch size ${b} differs from another input's ${batch}`);
      }
      batch = b;
    }
    checkValues(what, spec, tensor);
    byName.set(input.name, tensor);
  });
  const missing = manifest.inputs.find((s) => !byName.has(s.name));
  if (missing) throw invalidInput(`input ${JSON.stringify(missing.name)} is missing`);
  const outputs: string[] = [];
  for (const out of req.outputs) {
    if (!manifest.outputs.some((o) => o.name === out.name)) {
      throw invalidInput(
        `output ${JSON.stringify(out.name.slice(0, 64))} is not an output of model ${manifest.name}`,
      );
    }
    if (outputs.includes(out.name))
      throw invalidInput(`output ${JSON.stringify(out.name)} is requested twice`);
    outputs.push(out.name);
  }
  return {
    inputs: manifest.inputs.map((s) => byName.get(s.name)!),
    batch: batch ?? 1,
    outputs: outputs.length > 0 ? outputs : manifest.outputs.map((o) => o.name),
    raw,
  };
}
