/**
 * Tensor codec for the Open Inference Protocol: typed `contents` and raw contents (flattened,
 * row-major, little-endian; BYTES elements each with a 4-byte little-endian length prefix).
 * Decoding checks every size before allocating, so a hostile shape cannot make the service
 * allocate more than the limits allow. Pure: no I/O, no clock.
 */
import { endianness } from 'node:os';
import type { InferTensorContents } from '../../../gen/inference/grpc_service.ts';
import { invalidInput } from '../errors.ts';
import {
  DATATYPE_INFO,
  allocate,
  type ContentsField,
  type Datatype,
  type NumericArray,
  type TensorData,
} from './datatypes.ts';

/** A decoded tensor. */
export interface Tensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: TensorData;
}

/** Size limits applied while decoding. */
export interface CodecLimits {
  /** Largest single dimension. */
  maxDim: number;
  /** Largest rank. */
  maxRank: number;
  /** Most elements in one tensor. */
  maxElements: number;
  /** Most bytes of decoded data in one tensor. */
  maxBytes: number;
}

export const DEFAULT_CODEC_LIMITS: CodecLimits = {
  maxDim: 1 << 20,
  maxRank: 8,
  maxElements: 1 << 22,
  maxBytes: 4 * 1024 * 1024,
};

const LITTLE_ENDIAN = endianness() === 'LE';
const CONTENT_FIELDS: ContentsField[] = [
  'boolContents',
  'intContents',
  'int64Contents',
  'uintContents',
  'uint64Contents',
  'fp32Contents',
  'fp64Contents',
  'bytesContents',
];

/** Checks a shape and returns its element count. */
export function elementCount(what: string, shape: readonly number[], limits: CodecLimits): number {
  if (shape.length > limits.maxRank) {
    throw invalidInput(`${what}: rank ${shape.length} exceeds the limit of ${limits.maxRank}`);
  }
  let count = 1;
  for (const dim of shape) {
    if (!Number.isSafeInteger(dim) || dim < 0) {
      throw invalidInput(
        `${what}: dimension ${dim} in shape [${shape.join(',')}] is negative or not an integer`,
      );
    }
    if (dim > limits.maxDim) {
      throw invalidInput(`${what}: dimension ${dim} exceeds the limit of ${limits.maxDim}`);
    }
    count *= dim;
    if (count > limits.maxElements) {
      throw invalidInput(
        `${what}: shape [${shape.join(',')}] has more than ${limits.maxElements} elements`,
      );
    }
  }
  return count;
}

function checkBytes(what: string, bytes: number, limits: CodecLimits): void {
  if (bytes > limits.maxBytes) {
    throw invalidInput(`${what}: ${bytes} bytes exceed the limit of ${limits.maxBytes}`);
  }
}

function swapInPlace(bytes: Uint8Array, size: number): void {
  for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
}

/**
 * Decodes raw contents.
 *
 * @example
 * ```ts
 * const t = decodeRaw('input "x"', { name: 'x', datatype: 'FP32', shape: [1, 4] }, raw);
 * ```
 */
export function decodeRaw(
  what: string,
  head: { name: string; datatype: Datatype; shape: number[] },
  raw: Uint8Array,
  limits: CodecLimits = DEFAULT_CODEC_LIMITS,
): Tensor {
  const count = elementCount(what, head.shape, limits);
  checkBytes(what, raw.byteLength, limits);
  const { datatype } = head;
  if (datatype === 'BYTES') return { ...head, data: decodeRawBytes(what, raw, count) };
  const size = DATATYPE_INFO[datatype].size;
  if (raw.byteLength !== count * size) {
    throw invalidInput(
      `${what}: raw contents hold ${raw.byteLength} bytes; shape [${head.shape.join(',')}] of ${datatype} needs ${count * size}`,
    );
  }
  const data = allocate(datatype, count);
  // Copy: the wire buffer may be unaligned for the element size.
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  bytes.set(raw);
  if (!LITTLE_ENDIAN && size > 1) swapInPlace(bytes, size);
  if (datatype === 'BOOL') {
    const bad = (data as Uint8Array).findIndex((v) => v > 1);
    if (bad >= 0) throw invalidInput(`${what}: BOOL element ${bad} is neither 0 nor 1`);
  }
  return { ...head, data };
}

function decodeRawBytes(what: string, raw: Uint8Array, count: number): Uint8Array[] {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: Uint8Array[] = [];
  let pos = 0;
  while (pos < raw.byteLength) {
    if (out.length === count) {
      throw invalidInput(`${what}: raw BYTES contents hold more than ${count} elements`);
    }
    if (pos + 4 > raw.byteLength)
      throw invalidInput(`${what}: raw BYTES length prefix is truncated`);
    const len = view.getUint32(pos, true);
    pos += 4;
    if (pos + len > raw.byteLength) {
      throw invalidInput(
        `${what}: raw BYTES element ${out.length} claims ${len} bytes past the end`,
      );
    }
    out.push(raw.slice(pos, pos + len));
    pos += len;
  }
  if (out.length !== count) {
    throw invalidInput(
      `${what}: raw BYTES contents hold ${out.length} elements; shape needs ${count}`,
    );
  }
  return out;
}

/** Decodes typed contents (the field that matches the datatype; every other field empty). */
export function decodeTyped(
  what: string,
  head: { name: string; datatype: Datatype; shape: number[] },
  contents: InferTensorContents | undefined,
  limits: CodecLimits = DEFAULT_CODEC_LIMITS,
): Tensor {
  const count = elementCount(what, head.shape, limits);
  const { datatype } = head;
  const info = DATATYPE_INFO[datatype];
  if (!info.field) {
    throw invalidInput(`${what}: ${datatype} has no typed contents field; send it as raw contents`);
  }
  for (const field of CONTENT_FIELDS) {
    if (field !== info.field && (contents?.[field]?.length ?? 0) > 0) {
      throw invalidInput(
        `${what}: ${datatype} data must be in ${snake(info.field)}, not ${snake(field)}`,
      );
    }
  }
  const values = (contents?.[info.field] ?? []) as unknown[];
  if (values.length !== count) {
    throw invalidInput(
      `${what}: ${snake(info.field)} holds ${values.length} elements; shape [${head.shape.join(',')}] needs ${count}`,
    );
  }
  if (datatype === 'BYTES') {
    const data = values as Uint8Array[];
    checkBytes(
      what,
      data.reduce((a, b) => a + b.byteLength, 0),
      limits,
    );
    return { ...head, data };
  }
  checkBytes(what, count * info.size, limits);
  const data = allocate(datatype, count);
  if (datatype === 'BOOL') {
    (values as boolean[]).forEach((v, i) => ((data as Uint8Array)[i] = v ? 1 : 0));
  } else if (datatype === 'INT64' || datatype === 'UINT64') {
    const min = datatype === 'UINT64' ? 0 : Number.MIN_SAFE_INTEGER;
    (values as number[]).forEach((v, i) => {
      if (!Number.isSafeInteger(v) || v < min) {
        throw invalidInput(`${what}: element ${i} (${v}) is not a valid ${datatype}`);
      }
      (data as BigInt64Array)[i] = BigInt(v);
    });
  } else if (info.intRange) {
    const [lo, hi] = info.intRange;
    (values as number[]).forEach((v, i) => {
      if (!Number.isInteger(v) || v < lo || v > hi) {
        throw invalidInput(
          `${what}: element ${i} (${v}) is outside the ${datatype} range [${lo}, ${hi}]`,
        );
      }
      (data as Int32Array)[i] = v;
    });
  } else {
    (data as Float32Array).set(values as number[]);
  }
  return { ...head, data };
}

const WIRE_NAMES: Record<ContentsField, string> = {
  boolContents: 'bool_contents',
  intContents: 'int_contents',
  int64Contents: 'int64_contents',
  uintContents: 'uint_contents',
  uint64Contents: 'uint64_contents',
  fp32Contents: 'fp32_contents',
  fp64Contents: 'fp64_contents',
  bytesContents: 'bytes_contents',
};

function snake(field: ContentsField): string {
  return WIRE_NAMES[field];
}

/** Encodes a tensor as raw contents. */
export function encodeRaw(tensor: Tensor): Buffer {
  if (tensor.datatype === 'BYTES') {
    const items = tensor.data as Uint8Array[];
    const out = Buffer.alloc(items.reduce((a, b) => a + 4 + b.byteLength, 0));
    let pos = 0;
    for (const item of items) {
      out.writeUInt32LE(item.byteLength, pos);
      out.set(item, pos + 4);
      pos += 4 + item.byteLength;
    }
    return out;
  }
  const data = tensor.data as NumericArray;
  const out = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const copy = Buffer.from(out);
  if (!LITTLE_ENDIAN && DATATYPE_INFO[tensor.datatype].size > 1) {
    swapInPlace(copy, DATATYPE_INFO[tensor.datatype].size);
  }
  return copy;
}

/** Empty typed contents. */
export function emptyContents(): InferTensorContents {
  return {
    boolContents: [],
    intContents: [],
    int64Contents: [],
    uintContents: [],
    uint64Contents: [],
    fp32Contents: [],
    fp64Contents: [],
    bytesContents: [],
  };
}

/** Encodes a tensor as typed contents (FP16 cannot be: use {@link encodeRaw}). */
export function encodeTyped(tensor: Tensor): InferTensorContents {
  const contents = emptyContents();
  const info = DATATYPE_INFO[tensor.datatype];
  if (!info.field) throw new Error(`${tensor.datatype} can only be encoded as raw contents`);
  if (tensor.datatype === 'BYTES') {
    contents.bytesContents = (tensor.data as Uint8Array[]).map((b) => Buffer.from(b));
  } else if (tensor.datatype === 'BOOL') {
    contents.boolContents = Array.from(tensor.data as Uint8Array, (v) => v !== 0);
  } else if (tensor.datatype === 'INT64' || tensor.datatype === 'UINT64') {
    (contents[info.field] as number[]) = Array.from(tensor.data as BigInt64Array, (v) => Number(v));
  } else {
    (contents[info.field] as number[]) = Array.from(tensor.data as Float32Array);
  }
  return contents;
}
