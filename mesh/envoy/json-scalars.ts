/**
 * proto3 JSON mapping of scalar values and of the well-known types whose JSON form is not an
 * object of fields (https://protobuf.dev/programming-guides/json/). Each check returns a
 * problem description, or undefined when the value is acceptable.
 */

const INT_RANGES: Record<string, readonly [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** Checks a scalar field value (`type` is the proto scalar name, e.g. `uint32`). */
export function checkScalar(type: string, value: unknown): string | undefined {
  const range = INT_RANGES[type];
  if (range) return checkInteger(type, value, range);
  switch (type) {
    case 'double':
    case 'float':
      if (typeof value === 'number') return undefined;
      if (typeof value === 'string' && /^(NaN|-?Infinity)$/.test(value)) return undefined;
      if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) {
        return undefined;
      }
      return `expected a number (${type}), got ${describe(value)}`;
    case 'bool':
      return typeof value === 'boolean'
        ? undefined
        : `expected true or false, got ${describe(value)}`;
    case 'string':
      return typeof value === 'string' ? undefined : `expected a string, got ${describe(value)}`;
    case 'bytes':
      return typeof value === 'string' && BASE64.test(value)
        ? undefined
        : `expected base64 bytes, got ${describe(value)}`;
    default:
      return `unsupported scalar type ${type}`;
  }
}

function checkInteger(
  type: string,
  value: unknown,
  [min, max]: readonly [bigint, bigint],
): string | undefined {
  let parsed: bigint | undefined;
  if (typeof value === 'number' && Number.isInteger(value)) parsed = BigInt(value);
  else if (typeof value === 'string' && /^-?\d+$/.test(value)) parsed = BigInt(value);
  if (parsed === undefined) return `expected an integer (${type}), got ${describe(value)}`;
  if (parsed < min || parsed > max) return `${String(value)} is out of range for ${type}`;
  return undefined;
}

/** JSON form of google.protobuf.Duration: decimal seconds with an `s` suffix, e.g. `0.25s`. */
export function checkDuration(value: unknown): string | undefined {
  if (typeof value !== 'string' || !/^-?\d+(\.\d{1,9})?s$/.test(value)) {
    return `expected a duration string such as "1s" or "0.25s", got ${describe(value)}`;
  }
  if (Math.abs(Number.parseFloat(value)) > 315_576_000_000) return 'duration is out of range';
  return undefined;
}

/** JSON form of google.protobuf.Timestamp: RFC 3339 in UTC. */
export function checkTimestamp(value: unknown): string | undefined {
  const rfc3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
  if (typeof value !== 'string' || !rfc3339.test(value) || Number.isNaN(Date.parse(value))) {
    return `expected an RFC 3339 timestamp, got ${describe(value)}`;
  }
  return undefined;
}

/** JSON form of google.protobuf.FieldMask: comma-separated lowerCamelCase paths. */
export function checkFieldMask(value: unknown): string | undefined {
  if (
    typeof value !== 'string' ||
    !/^([a-z][A-Za-z0-9]*(\.[a-z][A-Za-z0-9]*)*(,|$))*$/.test(value)
  ) {
    return `expected a field mask such as "fooBar,baz.qux", got ${describe(value)}`;
  }
  return undefined;
}

/** The scalar inside each wrapper type: `{ value: 5 }` is written as plain `5`. */
export const WRAPPER_SCALARS: Readonly<Record<string, string>> = {
  '.google.protobuf.DoubleValue': 'double',
  '.google.protobuf.FloatValue': 'float',
  '.google.protobuf.Int64Value': 'int64',
  '.google.protobuf.UInt64Value': 'uint64',
  '.google.protobuf.Int32Value': 'int32',
  '.google.protobuf.UInt32Value': 'uint32',
  '.google.protobuf.BoolValue': 'bool',
  '.google.protobuf.StringValue': 'string',
  '.google.protobuf.BytesValue': 'bytes',
};

/** A short description of a value for messages: its kind, and numbers or booleans as such. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  // Never the text itself: a misplaced inline secret must not end up in an error message.
  if (typeof value === 'string') return 'a string';
  return `${typeof value} ${String(value)}`;
}
