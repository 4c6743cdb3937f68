/** Conversion between decoded protocol tensors and onnxruntime tensors. */
import { ort, type OrtTensor } from './ort.ts';
import { DATATYPE_INFO, datatypeOfOrt, type NumericArray } from '../tensor/datatypes.ts';
import type { Tensor } from '../tensor/codec.ts';
import { InferenceError } from '../errors.ts';

const utf8 = new TextDecoder('utf-8', { fatal: false });

export function toOrt(t: Tensor): OrtTensor {
  const type = DATATYPE_INFO[t.datatype].ort;
  if (type === 'string') {
    return new ort.Tensor(
      'string',
      (t.data as Uint8Array[]).map((b) => utf8.decode(b)),
      t.shape,
    );
  }
  if (type === 'float16') {
    // Where the runtime has Float16Array, onnxruntime-common turns a Uint16Array into one,
    // which the native binding then reads as empty. Keep the raw half bits and name the type.
    return Object.assign(new ort.Tensor('uint16', t.data as Uint16Array, t.shape), {
      type: 'float16' as const,
    });
  }
  return new ort.Tensor(type as 'float32', t.data as Float32Array, t.shape);
}

export function fromOrt(name: string, t: OrtTensor): Tensor {
  const datatype = datatypeOfOrt(t.type);
  if (!datatype) {
    throw new InferenceError(
      'ERR_INFERENCE_RUN_FAILED',
      `output ${name} has unsupported type ${t.type}`,
    );
  }
  const shape = t.dims.map(Number);
  if (datatype === 'BYTES') {
    return { name, datatype, shape, data: (t.data as string[]).map((s) => Buffer.from(s, 'utf8')) };
  }
  const data = t.data as NumericArray;
  if (datatype === 'FP16') {
    // Keep FP16 as raw half bits (a Float16Array view would hold decoded numbers).
    return {
      name,
      datatype,
      shape,
      data: new Uint16Array(data.buffer, data.byteOffset, data.length),
    };
  }
  return { name, datatype, shape, data };
}
