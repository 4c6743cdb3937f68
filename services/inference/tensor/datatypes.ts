/**
 * Open Inference Protocol data types: element sizes, the typed-contents field each uses, the
 * typed array that holds it in memory and the onnxruntime element type it maps to.
 */
export const DATATYPES = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
  'BYTES',
] as const;
export type Datatype = (typeof DATATYPES)[number];

export type ContentsField =
  | 'boolContents'
  | 'intContents'
  | 'int64Contents'
  | 'uintContents'
  | 'uint64Contents'
  | 'fp32Contents'
  | 'fp64Contents'
  | 'bytesContents';

export type NumericArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | BigInt64Array
  | BigUint64Array
  | Float32Array
  | Float64Array;

/** Tensor data in memory: a typed array (BOOL as 0/1 bytes, FP16 as raw half bits) or byte strings. */
export type TensorData = NumericArray | Uint8Array[];

export interface DatatypeInfo {
  /** Bytes per element; 0 for BYTES (variable). */
  size: number;
  /** The typed field in `InferTensorContents`, or undefined for FP16 (raw only). */
  field: ContentsField | undefined;
  ort:
    | 'bool'
    | 'uint8'
    | 'uint16'
    | 'uint32'
    | 'uint64'
    | 'int8'
    | 'int16'
    | 'int32'
    | 'int64'
    | 'float16'
    | 'float32'
    | 'float64'
    | 'string';
  /** Inclusive integer bounds for integer types carried in 32-bit typed fields. */
  intRange?: [number, number];
  float?: boolean;
}

export const DATATYPE_INFO: Record<Datatype, DatatypeInfo> = {
  BOOL: { size: 1, field: 'boolContents', ort: 'bool' },
  UINT8: { size: 1, field: 'uintContents', ort: 'uint8', intRange: [0, 255] },
  UINT16: { size: 2, field: 'uintContents', ort: 'uint16', intRange: [0, 65535] },
  UINT32: { size: 4, field: 'uintContents', ort: 'uint32', intRange: [0, 4294967295] },
  UINT64: { size: 8, field: 'uint64Contents', ort: 'uint64' },
  INT8: { size: 1, field: 'intContents', ort: 'int8', intRange: [-128, 127] },
  INT16: { size: 2, field: 'intContents', ort: 'int16', intRange: [-32768, 32767] },
  INT32: { size: 4, field: 'intContents', ort: 'int32', intRange: [-2147483648, 2147483647] },
  INT64: { size: 8, field: 'int64Contents', ort: 'int64' },
  FP16: { size: 2, field: undefined, ort: 'float16', float: true },
  FP32: { size: 4, field: 'fp32Contents', ort: 'float32', float: true },
  FP64: { size: 8, field: 'fp64Contents', ort: 'float64', float: true },
  BYTES: { size: 0, field: 'bytesContents', ort: 'string' },
};

export function isDatatype(value: string): value is Datatype {
  return (DATATYPES as readonly string[]).includes(value);
}

/** Maps an onnxruntime element type back to a protocol datatype. */
export function datatypeOfOrt(type: string): Datatype | undefined {
  return DATATYPES.find((d) => DATATYPE_INFO[d].ort === type);
}

/** Allocates a typed array for `count` elements of a numeric datatype. */
export function allocate(datatype: Exclude<Datatype, 'BYTES'>, count: number): NumericArray {
  switch (datatype) {
    case 'BOOL':
    case 'UINT8':
      return new Uint8Array(count);
    case 'INT8':
      return new Int8Array(count);
    case 'UINT16':
    case 'FP16':
      return new Uint16Array(count);
    case 'INT16':
      return new Int16Array(count);
    case 'UINT32':
      return new Uint32Array(count);
    case 'INT32':
      return new Int32Array(count);
    case 'UINT64':
      return new BigUint64Array(count);
    case 'INT64':
      return new BigInt64Array(count);
    case 'FP32':
      return new Float32Array(count);
    case 'FP64':
      return new Float64Array(count);
  }
}

/** IEEE 754 half-precision bits → number. */
export function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** number → IEEE 754 half-precision bits (round to nearest). */
export function numberToHalf(value: number): number {
  if (Number.isNaN(value)) return 0x7e00;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const abs = Math.abs(value);
  if (abs >= 65520) return sign | 0x7c00;
  if (abs < 2 ** -24 / 2) return sign;
  if (abs < 2 ** -14) return sign | Math.round(abs / 2 ** -24);
  let exp = Math.floor(Math.log2(abs));
  let frac = Math.round((abs / 2 ** exp - 1) * 1024);
  if (frac === 1024) {
    frac = 0;
    exp++;
  }
  return sign | ((exp + 15) << 10) | frac;
}
