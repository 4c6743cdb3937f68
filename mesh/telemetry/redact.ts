/**
 * Secret scrubbing shared by the logger and the span exporters. Two layers: values under keys
 * that name a secret are replaced whatever they hold, and any string is scanned for shapes that
 * are secrets wherever they appear (JWTs, PEM private keys, bearer credentials, URL passwords).
 */

/** What a redacted value is replaced with. */
export const REDACTED = '[REDACTED]';

const SECRET_KEYS = new Set([
  'authorization',
  'proxyauthorization',
  'cookie',
  'setcookie',
  'password',
  'passwd',
  'passphrase',
  'secret',
  'clientsecret',
  'token',
  'privatekey',
  'apikey',
  'xapikey',
  'assertion',
  'clientassertion',
  'codeverifier',
  'dpop',
]);

const SECRET_KEY_SUFFIXES = ['token', 'password', 'secret', 'privatekey', 'privatekeypem'];

/**
 * True when a property name denotes a secret (case, `-` and `_` ignored; for dotted names the
 * last part), e.g. `Authorization`, `client_secret`, `accessToken`, `http.request.header.authorization`.
 */
export function isSecretKey(key: string): boolean {
  let secret = keyVerdicts.get(key);
  if (secret === undefined) {
    // Dotted names (`http.request.header.authorization`) are judged by their last part.
    const k = key
      .slice(key.lastIndexOf('.') + 1)
      .toLowerCase()
      .replace(/[-_]/g, '');
    secret = SECRET_KEYS.has(k) || SECRET_KEY_SUFFIXES.some((suffix) => k.endsWith(suffix));
    // Keys come from code, so there are few; the bound only guards against surprises.
    if (keyVerdicts.size < 4096) keyVerdicts.set(key, secret);
  }
  return secret;
}

const keyVerdicts = new Map<string, boolean>();

// A compact JWS/JWE: base64url header starting with `eyJ` (`{"`), then 1 or more segments.
const JWT = /\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*){0,3}/g;
const PEM_PRIVATE_KEY =
  /-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----[\s\S]*?(?:-----END \1PRIVATE KEY-----|$)/g;
// The credential must hold a digit or symbol so that prose ("Basic authentication") is left alone.
const AUTH_SCHEME = /\b(Bearer|Basic|DPoP)\s+(?=[A-Za-z]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,}/gi;
const QUERY_SECRET =
  /\b(access_token|refresh_token|id_token|subject_token|actor_token|client_secret|client_assertion|password|code_verifier)=[^&\s"']+/gi;
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^/\s:@]+):[^@\s/]+@/gi;

/**
 * Replaces anything in `text` that looks like a secret with {@link REDACTED}.
 *
 * @example
 * ```ts
 * scrubSecrets('auth failed for Bearer eyJhbGciOi...'); // 'auth failed for Bearer [REDACTED]'
 * ```
 */
export function scrubSecrets(text: string): string {
  if (!mayHoldSecret(text)) return text;
  return text
    .replace(PEM_PRIVATE_KEY, REDACTED)
    .replace(AUTH_SCHEME, (_m, scheme: string) => `${scheme} ${REDACTED}`)
    .replace(JWT, REDACTED)
    .replace(QUERY_SECRET, (_m, name: string) => `${name}=${REDACTED}`)
    .replace(URL_PASSWORD, (_m, head: string) => `${head}:${REDACTED}@`);
}

/** Cheap pre-check: false when `text` holds none of the markers the patterns need. */
function mayHoldSecret(text: string): boolean {
  return (
    text.includes('eyJ') ||
    text.includes('PRIVATE KEY') ||
    text.includes('=') ||
    text.includes('@') ||
    /bearer|basic|dpop/i.test(text)
  );
}

/**
 * Like {@link redactValue} for a flat attribute map (spans, metrics labels), without copying
 * when nothing needs redaction, which is nearly always.
 */
export function redactAttributes<T extends Record<string, unknown>>(attributes: T): T {
  return attributesNeedRedaction(attributes) ? (redactValue(attributes) as T) : attributes;
}

/** True when {@link redactAttributes} would change something in `attributes`. */
export function attributesNeedRedaction(attributes: Record<string, unknown>): boolean {
  for (const key in attributes) {
    const value = attributes[key];
    if (isSecretKey(key)) return true;
    if (
      typeof value === 'string' ? attributeMayHoldSecret(value) : typeof value === 'object' && value
    ) {
      return true;
    }
  }
  return false;
}

// Span attribute values repeat (service and method names, peer addresses): their verdicts are
// kept, so exporting a span rarely runs a pattern. Bounded; long values are not kept.
const valueVerdicts = new Map<string, boolean>();
function attributeMayHoldSecret(value: string): boolean {
  let verdict = valueVerdicts.get(value);
  if (verdict === undefined) {
    verdict = mayHoldSecret(value);
    if (value.length <= 256) {
      if (valueVerdicts.size >= 4096) valueVerdicts.clear();
      valueVerdicts.set(value, verdict);
    }
  }
  return verdict;
}

const MAX_DEPTH = 10;

/**
 * Returns a copy of `value` with secret-named properties replaced and every string scrubbed.
 * Errors become plain objects (`type`, `message`, `stack`, `code`, `cause`) so their messages
 * are scrubbed too. Cycles and very deep values are cut.
 */
export function redactValue(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return scrubSecrets(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > MAX_DEPTH) return '[Truncated]';
  if (seen.has(value)) return '[Circular]';
  seen.add(value);
  if (Array.isArray(value)) return value.map((item) => redactValue(item, depth + 1, seen));
  if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`;
  if (value instanceof Date) return value;
  if (value instanceof Error) {
    const out: Record<string, unknown> = {
      type: value.name,
      message: scrubSecrets(value.message),
    };
    if (value.stack) out['stack'] = scrubSecrets(value.stack);
    for (const [key, v] of Object.entries(value)) {
      out[key] = isSecretKey(key) ? REDACTED : redactValue(v, depth + 1, seen);
    }
    if (value.cause !== undefined) out['cause'] = redactValue(value.cause, depth + 1, seen);
    return out;
  }
  if (value instanceof Map) {
    return redactValue(Object.fromEntries(value), depth + 1, seen);
  }
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    out[key] = isSecretKey(key) ? REDACTED : redactValue(v, depth + 1, seen);
  }
  return out;
}
