/**
 * RFC 8785 JSON Canonicalization Scheme. Object members sorted by their UTF-16 code units,
 * no whitespace, numbers in ECMAScript shortest round-trip form (which `JSON.stringify`
 * produces), strings with the minimal JSON escapes. Input must be I-JSON: no lone surrogates,
 * no NaN or infinities, plain objects and arrays only.
 *
 * @example
 * ```ts
 * canonicalize({ b: 1, a: [true, null, 'x'] }); // '{"a":[true,null,"x"],"b":1}'
 * ```
 */
export type JsonValue =
  null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function serializeString(s: string): string {
  if (LONE_SURROGATE.test(s)) throw new TypeError('JCS: string contains a lone surrogate');
  // Well-formed JSON.stringify escapes exactly what RFC 8785 §3.2.2.2 requires.
  return JSON.stringify(s);
}

function serialize(value: unknown, out: string[]): void {
  if (value === null) {
    out.push('null');
    return;
  }
  switch (typeof value) {
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('JCS: numbers must be finite');
      out.push(JSON.stringify(value));
      return;
    case 'string':
      out.push(serializeString(value));
      return;
    case 'object':
      break;
    default:
      throw new TypeError(`JCS: cannot serialize a ${typeof value}`);
  }
  if (Array.isArray(value)) {
    out.push('[');
    value.forEach((item, i) => {
      if (i > 0) out.push(',');
      serialize(item, out);
    });
    out.push(']');
    return;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError('JCS: only plain objects can be serialized');
  }
  // Default sort compares UTF-16 code units, as the RFC requires.
  const keys = Object.keys(value).sort();
  out.push('{');
  let first = true;
  for (const key of keys) {
    const member = (value as Record<string, unknown>)[key];
    if (member === undefined) continue;
    if (!first) out.push(',');
    first = false;
    out.push(serializeString(key), ':');
    serialize(member, out);
  }
  out.push('}');
}

/** Canonical JSON text of a value (members whose value is `undefined` are left out). */
export function canonicalize(value: unknown): string {
  const out: string[] = [];
  serialize(value, out);
  return out.join('');
}

/** Canonical JSON as UTF-8 bytes. */
export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalize(value), 'utf8');
}
