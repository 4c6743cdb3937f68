/**
 * The one place onnxruntime-node is imported.
 *
 * onnxruntime's native binding creates output typed arrays in Node's main realm and hands
 * them to onnxruntime's JavaScript `Tensor`, which checks them with `instanceof`. Inside a
 * sandboxed VM context (Jest runs every test file in one) the sandbox has its own
 * `Float32Array` etc., so that check fails for every output. When (and only when) this module
 * finds itself in such a context, it makes the sandbox's typed-array classes recognise
 * typed arrays of any realm by their brand, which is what `instanceof` means here.
 */
import * as ort from 'onnxruntime-node';

const typedArrays = [
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
];

// Buffer always comes from the main realm: any typed-array class whose prototype chain does not
// reach Buffer's TypedArray prototype belongs to a sandbox.
const mainTypedArrayProto = Object.getPrototypeOf(
  Object.getPrototypeOf(Buffer.prototype),
) as object;
const brand = Object.getOwnPropertyDescriptor(mainTypedArrayProto, Symbol.toStringTag)!.get!;
for (const ctor of typedArrays) {
  if (Object.getPrototypeOf(ctor.prototype) === mainTypedArrayProto) continue;
  const own = ctor[Symbol.hasInstance].bind(ctor);
  Object.defineProperty(ctor, Symbol.hasInstance, {
    value: (value: unknown) =>
      own(value) || (ArrayBuffer.isView(value) && brand.call(value) === ctor.name),
    configurable: true,
  });
}

export { ort };
export type OrtTensor = ort.Tensor;
export type OrtSession = ort.InferenceSession;
