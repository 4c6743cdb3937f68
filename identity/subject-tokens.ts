import type { KeyObject } from 'node:crypto';
import {
  createRemoteJWKSet,
  customFetch,
  jwtVerify,
  type JWTHeaderParameters,
  type JWTPayload,
} from 'jose';
import {
  createVerifiedTokenCache,
  publishedKeys,
  sameKey,
  toPublicKeyObject,
  type VerifiedTokenCache,
} from '../mesh/tokens/index.ts';
import type { TrustedIssuer } from './options.ts';

/** How long a partner's JWKS (and its discovered location) is trusted before a refetch. */
const JWKS_CACHE_MS = 600_000;
/** Skew allowed for a subject token's `exp`/`nbf`, seconds. */
const CLOCK_TOLERANCE_SEC = 30;
/** Verified subject tokens remembered per trusted issuer, and the longest one remembered. */
const SUBJECT_CACHE_SIZE = 5_000;
const SUBJECT_CACHE_MAX_LENGTH = 4_096;

export interface SubjectTokenVerifier {
  /**
   * Verifies a partner's subject token against a trust entry: signature by a key of the
   * issuer's JWKS, one of `algorithms`, `iss`, `aud`, `exp` and `sub` present, time window.
   * Rejects with jose's errors. The claims returned are frozen (they may be shared).
   */
  verify(
    trusted: TrustedIssuer,
    algorithms: string[],
    token: string,
    header: JWTHeaderParameters,
  ): Promise<JWTPayload>;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/**
 * Subject-token verification for RFC 8693 token exchange, with the partner JWKS located by
 * discovery (unless configured) and cached.
 *
 * @example
 * ```ts
 * const subjects = createSubjectTokenVerifier({ fetchFn, now: Date.now });
 * const claims = await subjects.verify(trusted, ['ES256'], subjectToken, header);
 * ```
 */
export function createSubjectTokenVerifier(deps: {
  fetchFn: typeof fetch;
  now: () => number;
}): SubjectTokenVerifier {
  const jwksCache = new Map<string, ReturnType<typeof createRemoteJWKSet>>();
  // The issuer's jwks_uri from discovery, kept as long as the JWKS itself: fetching the
  // discovery document on every exchange cost an upstream round trip per token.
  const discovered = new Map<string, { uri: Promise<string>; until: number }>();

  async function discoverJwksUri(issuer: string): Promise<string> {
    const res = await deps.fetchFn(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
    if (!res.ok) throw new Error('discovery failed');
    const uri = ((await res.json()) as { jwks_uri?: unknown }).jwks_uri;
    if (typeof uri !== 'string') throw new Error('discovery has no jwks_uri');
    return uri;
  }

  async function jwksUriOf(trusted: TrustedIssuer): Promise<string> {
    if (trusted.jwksUri) return trusted.jwksUri;
    const cached = discovered.get(trusted.issuer);
    if (cached && cached.until > Date.now()) return cached.uri;
    // Concurrent exchanges share one discovery request; a failure is not remembered.
    const uri = discoverJwksUri(trusted.issuer);
    discovered.set(trusted.issuer, { uri, until: Date.now() + JWKS_CACHE_MS });
    uri.catch(() => {
      if (discovered.get(trusted.issuer)?.uri === uri) discovered.delete(trusted.issuer);
    });
    return uri;
  }

  // Subject tokens already verified under a trust entry, by exact text: a partner that
  // exchanges the same upstream token again skips the signature check. A hit still needs the
  // time window (same tolerance) and the verifying key in the issuer's current JWKS. One cache
  // per trust entry, so one organisation's audience rule never vouches for another's.
  const verifiedSubjects = new WeakMap<TrustedIssuer, VerifiedTokenCache<JWTPayload, KeyObject>>();
  const subjectCache = (trusted: TrustedIssuer) => {
    let cache = verifiedSubjects.get(trusted);
    if (!cache) {
      cache = createVerifiedTokenCache({
        maxEntries: SUBJECT_CACHE_SIZE,
        now: () => new Date(deps.now()),
        clockToleranceSec: CLOCK_TOLERANCE_SEC,
      });
      verifiedSubjects.set(trusted, cache);
    }
    return cache;
  };

  async function verify(
    trusted: TrustedIssuer,
    algorithms: string[],
    token: string,
    header: JWTHeaderParameters,
  ): Promise<JWTPayload> {
    const jwks = await jwksFor(trusted);
    const cache = subjectCache(trusted);
    const [protectedHeader = '', payload = '', signature = ''] = token.split('.');
    const current = await publishedKeys(jwks, header, {
      protected: protectedHeader,
      payload,
      signature,
    }).catch(() => []);
    const known = cache.get(token, (key) => current.some((k) => sameKey(k, key)));
    if (known) return known;
    const verified = await jwtVerify(token, jwks, {
      issuer: trusted.issuer,
      audience: trusted.audience,
      algorithms,
      requiredClaims: ['exp', 'sub'],
      currentDate: new Date(deps.now()),
      clockTolerance: CLOCK_TOLERANCE_SEC,
    });
    const key = toPublicKeyObject(verified.key);
    if (key && token.length <= SUBJECT_CACHE_MAX_LENGTH) {
      const { exp, nbf } = verified.payload;
      cache.set(token, deepFreeze(verified.payload), { exp: exp!, nbf, key });
    }
    return verified.payload;
  }

  async function jwksFor(trusted: TrustedIssuer) {
    const uri = await jwksUriOf(trusted);
    let set = jwksCache.get(uri);
    if (!set) {
      set = createRemoteJWKSet(new URL(uri), {
        [customFetch]: deps.fetchFn,
        cacheMaxAge: JWKS_CACHE_MS,
      });
      jwksCache.set(uri, set);
    }
    return set;
  }

  return { verify };
}
