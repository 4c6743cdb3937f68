import fc from 'fast-check';
import { errorCode } from '../../../mesh/errors.ts';
import { InferenceError } from '../errors.ts';
import {
  DEFAULT_CODEC_LIMITS,
  decodeRaw,
  decodeTyped,
  elementCount,
  emptyContents,
  encodeRaw,
  encodeTyped,
  type Tensor,
} from './codec.ts';
import {
  DATATYPES,
  DATATYPE_INFO,
  halfToNumber,
  numberToHalf,
  type Datatype,
} from './datatypes.ts';

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InferenceError);
    expect(errorCode(err)).toBe('ERR_INFERENCE_INVALID_INPUT');
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
}

/** Arbitrary element values per datatype, as the typed-contents field carries them. */
function valuesArb(datatype: Datatype, count: number): fc.Arbitrary<unknown[]> {
  const arr = <T>(a: fc.Arbitrary<T>) => fc.array(a, { minLength: count, maxLength: count });
  switch (datatype) {
    case 'BOOL':
      return arr(fc.boolean());
    case 'INT64':
      return arr(fc.maxSafeInteger());
    case 'UINT64':
      return arr(fc.maxSafeNat());
    case 'FP32':
      return arr(fc.float({ noNaN: true }).map((v) => Math.fround(v)));
    case 'FP64':
      return arr(fc.double({ noNaN: true }));
    case 'FP16':
      return arr(fc.integer({ min: 0, max: 0xffff }));
    case 'BYTES':
      return arr(fc.uint8Array({ maxLength: 12 }));
    default: {
      const [min, max] = DATATYPE_INFO[datatype].intRange!;
      return arr(fc.integer({ min, max }));
    }
  }
}

const shapeArb = fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 3 });

test.each(DATATYPES.filter((d) => d !== 'FP16'))(
  '%s round-trips through typed contents and through raw contents',
  (datatype) => {
    fc.assert(
      fc.property(
        shapeArb.chain((shape) =>
          valuesArb(
            datatype,
            shape.reduce((a, b) => a * b, 1),
          ).map((values) => ({ shape, values })),
        ),
        ({ shape, values }) => {
          const contents = { ...emptyContents(), [DATATYPE_INFO[datatype].field!]: values };
          const head = { name: 'x', datatype, shape };
          const typed = decodeTyped('input "x"', head, contents);
          expect(encodeTyped(typed)[DATATYPE_INFO[datatype].field!]).toEqual(
            datatype === 'BYTES' ? values.map((v) => Buffer.from(v as Uint8Array)) : values,
          );
          const raw = encodeRaw(typed);
          const back = decodeRaw('input "x"', head, raw);
          expect(encodeRaw(back).equals(raw)).toBe(true);
          expect(back.data).toEqual(typed.data);
        },
      ),
      { numRuns: 60 },
    );
  },
);

test('raw layout is row-major little-endian with 4-byte BYTES length prefixes', () => {
  const fp32 = decodeTyped(
    'x',
    { name: 'x', datatype: 'FP32', shape: [2, 2] },
    {
      ...emptyContents(),
      fp32Contents: [1, 2, 3, 4],
    },
  );
  expect([...encodeRaw(fp32)]).toEqual([0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64]);
  const i16 = decodeRaw(
    'x',
    { name: 'x', datatype: 'INT16', shape: [2] },
    Buffer.from([0x01, 0x02, 0xff, 0xff]),
  );
  expect([...(i16.data as Int16Array)]).toEqual([0x0201, -1]);
  const bytes: Tensor = {
    name: 'b',
    datatype: 'BYTES',
    shape: [2],
    data: [Buffer.from('hi'), Buffer.from('')],
  };
  expect([...encodeRaw(bytes)]).toEqual([2, 0, 0, 0, 104, 105, 0, 0, 0, 0]);
  const u64 = decodeRaw(
    'x',
    { name: 'x', datatype: 'UINT64', shape: [1] },
    Buffer.from([1, 0, 0, 0, 0, 0, 0, 0x80]),
  );
  expect((u64.data as BigUint64Array)[0]).toBe(0x8000000000000001n);
});

test('FP16 travels raw only, and half conversion is exact on representable values', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffff }), (bits) => {
      const v = halfToNumber(bits);
      if (Number.isNaN(v)) return;
      expect(halfToNumber(numberToHalf(v))).toBe(v);
    }),
    { numRuns: 200 },
  );
  expect(halfToNumber(0x3c00)).toBe(1);
  expect(halfToNumber(0xc000)).toBe(-2);
  expect(halfToNumber(0x7c00)).toBe(Infinity);
  const raw = Buffer.from([0x00, 0x3c, 0x00, 0xc0]);
  const t = decodeRaw('x', { name: 'x', datatype: 'FP16', shape: [2] }, raw);
  expect(encodeRaw(t).equals(raw)).toBe(true);
  expect(
    refusal(() =>
      decodeTyped('input "h"', { name: 'h', datatype: 'FP16', shape: [1] }, emptyContents()),
    ),
  ).toBe('input "h": FP16 has no typed contents field; send it as raw contents');
});

test('refuses negative, fractional and huge dimensions before allocating', () => {
  const limits = DEFAULT_CODEC_LIMITS;
  expect(refusal(() => elementCount('input "x"', [1, -4], limits))).toBe(
    'input "x": dimension -4 in shape [1,-4] is negative or not an integer',
  );
  expect(refusal(() => elementCount('input "x"', [1.5], limits))).toMatch(/not an integer/);
  expect(refusal(() => elementCount('input "x"', [2 ** 40], limits))).toBe(
    `input "x": dimension ${2 ** 40} exceeds the limit of ${limits.maxDim}`,
  );
  expect(refusal(() => elementCount('input "x"', [65536, 65536], limits))).toBe(
    `input "x": shape [65536,65536] has more than ${limits.maxElements} elements`,
  );
  expect(refusal(() => elementCount('input "x"', [1, 1, 1, 1, 1, 1, 1, 1, 1], limits))).toMatch(
    /rank 9 exceeds/,
  );
});

test('refuses raw contents whose length does not match the shape', () => {
  expect(
    refusal(() =>
      decodeRaw('input "x"', { name: 'x', datatype: 'FP32', shape: [1, 4] }, Buffer.alloc(12)),
    ),
  ).toBe('input "x": raw contents hold 12 bytes; shape [1,4] of FP32 needs 16');
  expect(
    refusal(() =>
      decodeRaw('input "x"', { name: 'x', datatype: 'BOOL', shape: [2] }, Buffer.from([1, 7])),
    ),
  ).toBe('input "x": BOOL element 1 is neither 0 nor 1');
});

test('refuses malformed raw BYTES: truncated prefix, overlong element, wrong count', () => {
  const head = { name: 's', datatype: 'BYTES' as const, shape: [1] };
  expect(refusal(() => decodeRaw('input "s"', head, Buffer.from([1, 0])))).toBe(
    'input "s": raw BYTES length prefix is truncated',
  );
  expect(
    refusal(() => decodeRaw('input "s"', head, Buffer.from([0xff, 0xff, 0xff, 0x7f, 1]))),
  ).toMatch(/claims 2147483647 bytes past the end/);
  expect(refusal(() => decodeRaw('input "s"', head, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0])))).toBe(
    'input "s": raw BYTES contents hold more than 1 elements',
  );
  expect(
    refusal(() => decodeRaw('input "s"', { ...head, shape: [2] }, Buffer.from([0, 0, 0, 0]))),
  ).toBe('input "s": raw BYTES contents hold 1 elements; shape needs 2');
});

test('refuses typed contents in the wrong field, with the wrong count or out of the type range', () => {
  const head = { name: 'x', datatype: 'FP32' as const, shape: [2] };
  expect(
    refusal(() => decodeTyped('input "x"', head, { ...emptyContents(), intContents: [1, 2] })),
  ).toBe('input "x": FP32 data must be in fp32_contents, not int_contents');
  expect(
    refusal(() => decodeTyped('input "x"', head, { ...emptyContents(), fp32Contents: [1] })),
  ).toBe('input "x": fp32_contents holds 1 elements; shape [2] needs 2');
  expect(
    refusal(() =>
      decodeTyped(
        'input "x"',
        { name: 'x', datatype: 'INT8', shape: [1] },
        { ...emptyContents(), intContents: [200] },
      ),
    ),
  ).toBe('input "x": element 0 (200) is outside the INT8 range [-128, 127]');
  expect(
    refusal(() =>
      decodeTyped(
        'input "x"',
        { name: 'x', datatype: 'UINT64', shape: [1] },
        { ...emptyContents(), uint64Contents: [-1] },
      ),
    ),
  ).toBe('input "x": element 0 (-1) is not a valid UINT64');
});

test('refuses tensors over the byte limit', () => {
  const limits = { ...DEFAULT_CODEC_LIMITS, maxBytes: 64 };
  expect(
    refusal(() =>
      decodeRaw('input "x"', { name: 'x', datatype: 'FP64', shape: [9] }, Buffer.alloc(72), limits),
    ),
  ).toBe('input "x": 72 bytes exceed the limit of 64');
});

test('decoding never throws anything but a precise INVALID_ARGUMENT on arbitrary bytes', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...DATATYPES),
      fc.array(fc.integer({ min: -3, max: 70000 }), { maxLength: 4 }),
      fc.uint8Array({ maxLength: 64 }),
      (datatype, shape, raw) => {
        try {
          decodeRaw('input "f"', { name: 'f', datatype, shape }, raw);
        } catch (err) {
          expect(err).toBeInstanceOf(InferenceError);
          expect((err as Error).message.startsWith('input "f"')).toBe(true);
        }
      },
    ),
    { numRuns: 200 },
  );
});
