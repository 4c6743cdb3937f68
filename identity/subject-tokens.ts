import { createRemoteJWKSet, customFetch, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { createJwtVerifier, isJwtAlgorithm, type JwtVerifier } from '../mesh/tokens/index.ts';
import type { TrustedIssuer } from './options.ts';

/** How long a partner's JWKS (and its discovered location) is trusted before a refetch. */
const JWKS_CACHE_MS = 600_000;
/** Skew allowed for a subject token's `exp`/`nbf`, seconds. */
const CLOCK_TOLERANCE_SEC = 30;
/** Verified subject tokens remembered per trusted issuer (LRU, by exact text). */
const SUBJECT_CACHE_SIZE = 5_000;
/** Longer subject tokens are refused before any parsing. */
const SUBJECT_MAX_LENGTH = 16_384;

export interface SubjectTokenVerifier {
  /**
   * Verifies a partner's subject token against a trust entry: signature by a key of the
   * issuer's JWKS, one of `algorithms` (asymmetric only), `iss`, `aud`, `exp` and `sub`
   * present, time window. Rejects with a `TokenError` (mesh/tokens) saying why. The claims
   * returned are frozen (they may be shared).
   */
  verify(trusted: TrustedIssuer, algorithms: string[], token: string): Promise<JWTPayload>;
}

/**
 * Subject-token verification for RFC 8693 token exchange, with the partner JWKS located by
 * discovery (unless configured) and cached.
 *
 * @example
 * ```ts
 * const subjects = createSubjectTokenVerifier({ fetchFn, now: Date.now });
 * const claims = await subjects.verify(trusted, ['ES256'], subjectToken);
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

  // One verifier per trust entry and algorithm list, each with its own cache of verified
  // tokens (by exact text): a partner that exchanges the same upstream token again skips the
  // signature check, but a hit still needs the time window and the verifying key in the
  // issuer's current JWKS. Separate caches, so one organisation's audience rule never vouches
  // for another's. The signature is checked with node:crypto (mesh/tokens), not WebCrypto.
  const verifiers = new WeakMap<TrustedIssuer, { algorithms: string; verifier: JwtVerifier }>();
  const verifierFor = (trusted: TrustedIssuer, algorithms: string[]) => {
    const key = algorithms.join(' ');
    const known = verifiers.get(trusted);
    if (known?.algorithms === key) return known.verifier;
    const keys: JWTVerifyGetKey = async (header, input) => (await jwksFor(trusted))(header, input);
    const verifier = createJwtVerifier({
      issuer: trusted.issuer,
      audience: trusted.audience,
      keys,
      algorithms: algorithms.filter(isJwtAlgorithm),
      typ: null,
      requiredClaims: ['exp', 'sub'],
      clockToleranceSec: CLOCK_TOLERANCE_SEC,
      now: () => new Date(deps.now()),
      cacheSize: SUBJECT_CACHE_SIZE,
      maxTokenLength: SUBJECT_MAX_LENGTH,
      // Most exchanges bring a new partner token: keep its signature check off the event loop.
      offThread: true,
    });
    verifiers.set(trusted, { algorithms: key, verifier });
    return verifier;
  };

  async function verify(
    trusted: TrustedIssuer,
    algorithms: string[],
    token: string,
  ): Promise<JWTPayload> {
    const { payload } = await verifierFor(trusted, algorithms).verify(token);
    return payload as JWTPayload;
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
