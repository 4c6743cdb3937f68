/**
 * Verifies compact JWTs with `node:crypto` directly, and remembers verified tokens in a
 * {@link VerifiedTokenCache}: mesh access tokens (RFC 9068, ES256/EdDSA, `typ: at+jwt`) in the
 * services, and partner subject tokens (any asymmetric algorithm the trust entry allows, any
 * `typ`) in the identity broker's token exchange.
 *
 * Why not jose's `jwtVerify`: jose (v6) goes through WebCrypto (algorithm normalisation, key
 * usage checks and a promise job around each signature check), measured at about 0.6-0.7 of
 * a bare `crypto.verify` per core; here the key is converted once (`KeyObject`) and checked
 * with a synchronous `crypto.verify`. Base64url is decoded strictly (canonical text only), so
 * one token has exactly one accepted spelling, which is what a cache keyed by text needs.
 * Key lookup stays with the jose key source (`createRemoteJWKSet`/`createLocalJWKSet`), so
 * JWKS fetching, caching and `kid` matching behave as before.
 */
import type { KeyObject } from 'node:crypto';
import type { JWTHeaderParameters, JWTPayload, JWTVerifyGetKey } from 'jose';
import {
  isJwtAlgorithm,
  keyServes,
  verifyJws,
  verifyJwsOffThread,
  type JwtAlgorithm,
} from './jws-algorithms.ts';
import { publishedKeys, sameKey } from './published-keys.ts';
import { TokenError } from './token-error.ts';
import { createVerifiedTokenCache, type VerifiedTokenCacheStats } from './verified-token-cache.ts';

/** Options of {@link createJwtVerifier}; every default is listed. */
export interface JwtVerifierOptions {
  /** Expected `iss` (exact match). */
  issuer: string;
  /** Expected `aud` (the claim equals it, or is an array holding it). */
  audience: string;
  /** Key source: `createRemoteJWKSet(url)` in services, `createLocalJWKSet(jwks)` in tests. */
  keys: JWTVerifyGetKey;
  /**
   * Accepted algorithms. Default `['ES256', 'EdDSA']` (what mesh tokens use); only asymmetric
   * algorithms can be allowed (see `jws-algorithms.ts`), never `HS*` or `none`.
   */
  algorithms?: readonly JwtAlgorithm[];
  /**
   * Required `typ` header (compared like jose: case-insensitive, `application/` optional).
   * Default `at+jwt`; `null` accepts any `typ` or none (partner tokens).
   */
  typ?: string | null;
  /** Claims that must be present. `exp` is always required. Default `['exp', 'sub']`. */
  requiredClaims?: readonly string[];
  /** Skew allowed for `exp`/`nbf`, seconds. Default 30. */
  clockToleranceSec?: number;
  /** Clock. Default real time. */
  now?: () => Date;
  /** Verified tokens remembered (LRU, exact token text). Default 10,000; 0 disables. */
  cacheSize?: number;
  /** Longer tokens are refused before any parsing. Default 16,384 characters. */
  maxTokenLength?: number;
  /**
   * Check signatures on libuv's thread pool instead of the calling thread. Default false: a
   * mesh service sees few first-seen tokens and keeps the latency of a synchronous check; the
   * broker, which checks a new partner token on most exchanges, frees its event loop.
   */
  offThread?: boolean;
}

/** A token that passed every check. Both parts are deeply frozen (they may be shared). */
export interface VerifiedJwt {
  header: Readonly<JWTHeaderParameters>;
  payload: Readonly<JWTPayload>;
}

export interface JwtVerifier {
  /** Verifies a compact JWT; rejects with a {@link TokenError} saying why. */
  verify(token: string): Promise<VerifiedJwt>;
  /** The verified-token cache's size and counters; `clearCache` forgets every entry. */
  cacheStats(): VerifiedTokenCacheStats & { size: number };
  clearCache(): void;
}

const MESH_ALGORITHMS: readonly JwtAlgorithm[] = ['ES256', 'EdDSA'];
const SEGMENT = /^[A-Za-z0-9_-]+$/;

const malformed = (message = 'token is not a well-formed JWS') =>
  new TokenError('ERR_TOKEN_MALFORMED', message);
const claimInvalid = (claim: string, message: string) =>
  new TokenError('ERR_TOKEN_CLAIM_INVALID', message, { claim });

/** Strict base64url: the alphabet only, no padding, and the canonical encoding of its bytes. */
function decodeSegment(segment: string): Buffer {
  if (!SEGMENT.test(segment) || segment.length % 4 === 1) throw malformed();
  const bytes = Buffer.from(segment, 'base64url');
  if (bytes.toString('base64url') !== segment) throw malformed();
  return bytes;
}

function jsonObject(segment: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decodeSegment(segment).toString('utf8'));
  } catch (err) {
    if (err instanceof TokenError) throw err;
    throw malformed();
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw malformed();
  return value as Record<string, unknown>;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

const normalizeTyp = (typ: string) => typ.toLowerCase().replace(/^application\//, '');

/**
 * Creates a verifier: signature (allowed asymmetric algorithms only, key from the key source),
 * `typ`, no `crit`,
 * `iss`, `aud`, required claims, `iat`/`nbf`/`exp` types and the time window. A token that
 * passed is remembered by its exact text until its `exp`; a later call with the same text
 * re-checks the time window and that the key that verified it is still in the key set, and
 * skips the signature. Nothing that failed is remembered.
 *
 * @example
 * ```ts
 * const verifier = createJwtVerifier({
 *   issuer: 'https://id.bulwark.local',
 *   audience: 'urn:bulwark:inference',
 *   keys: createRemoteJWKSet(new URL('https://id.bulwark.local/jwks')),
 * });
 * const { payload } = await verifier.verify(bearer); // throws TokenError when refused
 * ```
 */
export function createJwtVerifier(options: JwtVerifierOptions): JwtVerifier {
  const config = {
    algorithms: MESH_ALGORITHMS,
    typ: 'at+jwt' as string | null,
    requiredClaims: ['exp', 'sub'] as readonly string[],
    clockToleranceSec: 30,
    now: () => new Date(),
    cacheSize: 10_000,
    offThread: false,
    maxTokenLength: 16_384,
    ...options,
  };
  if (!config.issuer) throw new TypeError('createJwtVerifier: option "issuer" is required');
  if (!config.audience) throw new TypeError('createJwtVerifier: option "audience" is required');
  if (typeof config.keys !== 'function') {
    throw new TypeError('createJwtVerifier: option "keys" must be a key source function');
  }
  if (!config.algorithms.length || !config.algorithms.every(isJwtAlgorithm)) {
    throw new TypeError(
      'createJwtVerifier: option "algorithms" may only hold asymmetric JWS algorithms (ES*, RS*, PS*, EdDSA)',
    );
  }
  const { issuer, audience, keys, clockToleranceSec: tolerance } = config;
  const allowed = new Set<string>(config.algorithms);
  const typ = config.typ === null ? null : normalizeTyp(config.typ);
  const required = [...new Set(['exp', ...config.requiredClaims])];
  const cache = createVerifiedTokenCache<VerifiedJwt, KeyObject>({
    maxEntries: config.cacheSize,
    now: config.now,
    clockToleranceSec: tolerance,
  });

  /** Every key of the set that may have signed this token (usually one). */
  async function candidateKeys(
    header: JWTHeaderParameters,
    parts: string[],
    alg: JwtAlgorithm,
  ): Promise<KeyObject[]> {
    const input = { protected: parts[0]!, payload: parts[1]!, signature: parts[2]! };
    const usable = (await publishedKeys(keys, header, input)).filter((k) => keyServes(k, alg));
    if (!usable.length) {
      throw new TokenError('ERR_TOKEN_KEY_NOT_FOUND', 'no key in the key set matches the token');
    }
    return usable;
  }

  async function checkSignature(
    parts: string[],
    alg: JwtAlgorithm,
    candidates: KeyObject[],
  ): Promise<KeyObject> {
    const signature = decodeSegment(parts[2]!);
    const data = Buffer.from(`${parts[0]}.${parts[1]}`, 'latin1');
    for (const key of candidates) {
      const ok = config.offThread
        ? await verifyJwsOffThread(alg, data, signature, key)
        : verifyJws(alg, data, signature, key);
      if (ok) return key;
    }
    throw new TokenError('ERR_TOKEN_SIGNATURE_INVALID', 'token signature is not valid');
  }

  function checkClaims(payload: Record<string, unknown>): void {
    for (const claim of required) {
      if (!(claim in payload)) throw claimInvalid(claim, `token lacks the "${claim}" claim`);
    }
    if (payload.iss !== issuer) throw claimInvalid('iss', 'token "iss" is not the expected issuer');
    const aud = payload.aud;
    if (!(aud === audience || (Array.isArray(aud) && aud.includes(audience)))) {
      throw claimInvalid('aud', 'token "aud" does not name this service');
    }
    if ('sub' in payload && typeof payload.sub !== 'string') {
      throw claimInvalid('sub', 'token "sub" must be a string');
    }
    for (const claim of ['iat', 'nbf', 'exp']) {
      if (claim in payload && typeof payload[claim] !== 'number') {
        throw claimInvalid(claim, `token "${claim}" must be a number`);
      }
    }
    const now = Math.floor(config.now().getTime() / 1000);
    if (typeof payload.nbf === 'number' && payload.nbf > now + tolerance) {
      throw new TokenError('ERR_TOKEN_NOT_YET_VALID', 'token is not yet valid');
    }
    if ((payload.exp as number) <= now - tolerance) {
      throw new TokenError('ERR_TOKEN_EXPIRED', 'token has expired');
    }
  }

  return {
    async verify(token) {
      if (typeof token !== 'string' || token.length > config.maxTokenLength) throw malformed();
      const parts = token.split('.');
      if (parts.length !== 3) throw malformed();
      const header = jsonObject(parts[0]!) as JWTHeaderParameters;
      const alg = header.alg;
      if (typeof alg !== 'string' || !allowed.has(alg)) {
        throw new TokenError('ERR_TOKEN_ALGORITHM_NOT_ALLOWED', 'token algorithm is not allowed');
      }
      // No extension is understood, so none may be critical (RFC 7515 section 4.1.11).
      if (header.crit !== undefined) throw malformed('token has critical header parameters');
      if (typ !== null && (typeof header.typ !== 'string' || normalizeTyp(header.typ) !== typ)) {
        throw new TokenError('ERR_TOKEN_TYPE_NOT_ALLOWED', 'token type is not allowed');
      }
      const candidates = await candidateKeys(header, parts, alg as JwtAlgorithm);
      const cached = cache.get(token, (key) => candidates.some((c) => sameKey(c, key)));
      if (cached) return cached;

      const key = await checkSignature(parts, alg as JwtAlgorithm, candidates);
      const payload = jsonObject(parts[1]!);
      checkClaims(payload);
      const verified: VerifiedJwt = deepFreeze({ header, payload: payload as JWTPayload });
      cache.set(token, verified, {
        exp: payload.exp as number,
        nbf: payload.nbf as number | undefined,
        key,
      });
      return verified;
    },
    cacheStats: () => ({ ...cache.stats(), size: cache.size }),
    clearCache: () => cache.clear(),
  };
}
