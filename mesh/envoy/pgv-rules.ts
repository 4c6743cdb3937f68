import type protobuf from 'protobufjs';

/*
 * The `protoc-gen-validate` rules Envoy checks when it loads a config, for values that are
 * present: numeric bounds (on scalars and on wrapper types, which carry the scalar's rules),
 * string lengths and list sizes. Required fields are checked where the walk knows what is
 * missing (walk-message.ts).
 */

const NUMERIC = [
  'int32',
  'int64',
  'uint32',
  'uint64',
  'sint32',
  'sint64',
  'fixed32',
  'fixed64',
  'sfixed32',
  'sfixed64',
  'double',
  'float',
];

const BOUNDS: readonly [string, (value: number, bound: number) => boolean, string][] = [
  ['gt', (v, b) => v > b, 'greater than'],
  ['gte', (v, b) => v >= b, 'at least'],
  ['lt', (v, b) => v < b, 'less than'],
  ['lte', (v, b) => v <= b, 'at most'],
];

/** Checks a present scalar (or wrapped scalar) value against the field's rules. */
export function checkValueRules(
  field: protobuf.Field,
  scalarType: string,
  value: unknown,
): string | undefined {
  const options = field.options;
  if (!options) return undefined;
  if (NUMERIC.includes(scalarType)) {
    const number = typeof value === 'string' ? Number(value) : value;
    if (typeof number !== 'number' || Number.isNaN(number)) return undefined;
    for (const [rule, holds, words] of BOUNDS) {
      const bound = options[`(validate.rules).${scalarType}.${rule}`];
      if (typeof bound === 'number' && !holds(number, bound)) {
        return `${number} is not allowed: "${field.name}" must be ${words} ${bound}`;
      }
    }
    return undefined;
  }
  if (scalarType === 'string' && typeof value === 'string') {
    const min = options['(validate.rules).string.min_len'];
    if (typeof min === 'number' && [...value].length < min) {
      return min === 1
        ? `"${field.name}" must not be empty`
        : `"${field.name}" must have at least ${min} characters`;
    }
    const max = options['(validate.rules).string.max_bytes'];
    if (typeof max === 'number' && Buffer.byteLength(value) > max) {
      return `"${field.name}" must be at most ${max} bytes`;
    }
  }
  return undefined;
}

/** Checks a present list against `repeated.min_items` / `repeated.max_items`. */
export function checkListRules(field: protobuf.Field, list: unknown[]): string | undefined {
  const min = field.options?.['(validate.rules).repeated.min_items'];
  if (typeof min === 'number' && list.length < min) {
    return `"${field.name}" needs at least ${min} item${min === 1 ? '' : 's'}`;
  }
  const max = field.options?.['(validate.rules).repeated.max_items'];
  if (typeof max === 'number' && list.length > max) {
    return `"${field.name}" allows at most ${max} items`;
  }
  return undefined;
}
