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
// Most strings hold no surrogate at all: this simple scan is much cheaper than the one above.
const ANY_SURROGATE = /[\uD800-\uDFFF]/;

function serializeString(s: string): string {
  if (ANY_SURROGATE.test(s) && LONE_SURROGATE.test(s))
    throw new TypeError('JCS: string contains a lone surrogate');
  // Well-formed JSON.stringify escapes exactly what RFC 8785 §3.2.2.2 requires.
  return JSON.stringify(s);
}

// Member names repeat (the same few fields in every record): keep their serialized form.
const keyCache = new Map<string, string>();
const KEY_CACHE_MAX = 4096;

function serializeKey(key: string): string {
  let out = keyCache.get(key);
  if (out === undefined) {
    out = serializeString(key);
    if (keyCache.size < KEY_CACHE_MAX) keyCache.set(key, out);
  }
  return out;
}

// Strings are built by concatenation (V8 ropes), cheaper than collecting parts to join.
function serialize(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('JCS: numbers must be finite');
      return JSON.stringify(value);
    case 'string':
      return serializeString(value);
    case 'object':
      break;
    default:
      throw new TypeError(`JCS: cannot serialize a ${typeof value}`);
  }
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      out += serialize(value[i]);
    }
    return out + ']';
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError('JCS: only plain objects can be serialized');
  }
  // Default sort compares UTF-16 code units, as the RFC requires.
  const keys = Object.keys(value).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const member = (value as Record<string, unknown>)[key];
    if (member === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += serializeKey(key) + ':' + serialize(member);
  }
  return out + '}';
}

/** Canonical JSON text of a value (members whose value is `undefined` are left out). */
export function canonicalize(value: unknown): string {
  return serialize(value);
}

/** Canonical JSON as UTF-8 bytes. */
export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(serialize(value), 'utf8');
}
