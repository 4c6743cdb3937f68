import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import { createJwtVerifier, TokenError } from '../../mesh/tokens/index.ts';
import { PolicyError } from './errors.ts';

/** Who a verified access token speaks for. */
export interface TokenIdentity {
  /** `<org>/<upstream sub>`. */
  subject: string;
  org: string;
  roles: string[];
  scopes: string[];
  clientId?: string;
  acr?: string;
  /** `cnf.x5t#S256`: the token is bound to this client certificate thumbprint. */
  certificateThumbprint?: string;
}

/** Options of {@link createTokenVerifier}. */
export interface TokenVerifierOptions {
  /** Expected `iss`: the identity broker's issuer URL. */
  issuer: string;
  /** Expected `aud`, e.g. `urn:bulwark:inference`. */
  audience: string;
  /**
   * Key source: `createRemoteJWKSet(new URL(jwksUri))` in production (fetches and caches the
   * broker's JWKS), `createLocalJWKSet(jwks)` in tests.
   */
  keys: JWTVerifyGetKey;
  /** Clock. Default real time. */
  now?: () => Date;
  /** Allowed clock skew for `exp`/`nbf`, seconds. Default 30. */
  clockToleranceSec?: number;
  /**
   * Verified tokens remembered by their exact text, so a caller re-using its token skips the
   * signature check; the time window and the verifying key's presence in the key set are
   * still checked on every use. Default 10,000; 0 disables.
   */
  cacheSize?: number;
}

/** Verifies access tokens and reads identities from already-verified payloads. */
export interface TokenVerifier {
  /** Verifies a compact JWT: signature, ES256/EdDSA only, `typ at+jwt`, iss, aud, exp, nbf. */
  verify(token: string): Promise<TokenIdentity>;
  /**
   * Reads an identity from a payload a trusted gateway already verified (Envoy jwt_authn);
   * iss, aud and the time window are checked again.
   */
  fromVerifiedPayload(payload: Record<string, unknown>): TokenIdentity;
}

const ORG = /^[a-z0-9][a-z0-9._-]{0,62}$/;

function unauthenticated(message: string, cause?: unknown): PolicyError {
  return new PolicyError('ERR_POLICY_UNAUTHENTICATED', message, { cause });
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function identityOf(payload: JWTPayload): TokenIdentity {
  const { sub, org } = payload;
  if (typeof sub !== 'string' || typeof org !== 'string' || !ORG.test(org)) {
    throw unauthenticated('token lacks a subject or organisation');
  }
  // The broker names subjects <org>/<upstream sub>; a mismatch means a forged or foreign token.
  if (!sub.startsWith(`${org}/`)) throw unauthenticated('token subject and organisation disagree');
  const identity: TokenIdentity = {
    subject: sub,
    org,
    roles: strings(payload.roles),
    scopes: typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [],
  };
  if (typeof payload.client_id === 'string') identity.clientId = payload.client_id;
  if (typeof payload.acr === 'string') identity.acr = payload.acr;
  const cnf = payload.cnf as Record<string, unknown> | undefined;
  if (cnf && typeof cnf === 'object') {
    const x5t = cnf['x5t#S256'];
    if (typeof x5t !== 'string') throw unauthenticated('token confirmation is not understood');
    identity.certificateThumbprint = x5t;
  }
  return identity;
}

/**
 * Creates the verifier the ext_authz handler uses when the gateway did not verify the token.
 *
 * @example
 * ```ts
 * const verifier = createTokenVerifier({
 *   issuer: 'https://id.bulwark.local',
 *   audience: 'urn:bulwark:inference',
 *   keys: createRemoteJWKSet(new URL('https://id.bulwark.local/jwks')),
 * });
 * const who = await verifier.verify(bearer);
 * ```
 */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const {
    issuer,
    audience,
    keys,
    now = () => new Date(),
    clockToleranceSec = 30,
    cacheSize = 10_000,
  } = options;
  if (!issuer) throw new TypeError('issuer is required');
  if (!audience) throw new TypeError('audience is required');
  const jwt = createJwtVerifier({
    issuer,
    audience,
    keys,
    algorithms: ['ES256', 'EdDSA'],
    typ: 'at+jwt',
    requiredClaims: ['exp', 'sub'],
    clockToleranceSec,
    now,
    cacheSize,
  });
  return {
    async verify(token) {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwt.verify(token));
      } catch (err) {
        const code = err instanceof TokenError ? err.code : undefined;
        if (code === 'ERR_TOKEN_EXPIRED') throw unauthenticated('token expired', err);
        if (code === 'ERR_TOKEN_NOT_YET_VALID') throw unauthenticated('token not yet valid', err);
        throw unauthenticated('invalid token', err);
      }
      // The identity is read afresh on every call: the cached claims are shared and frozen.
      return identityOf(payload);
    },
    fromVerifiedPayload(payload) {
      if (payload.iss !== issuer) throw unauthenticated('invalid token');
      const aud = payload.aud;
      if (!(aud === audience || (Array.isArray(aud) && aud.includes(audience)))) {
        throw unauthenticated('invalid token');
      }
      const t = now().getTime() / 1000;
      if (typeof payload.exp !== 'number' || payload.exp + clockToleranceSec <= t) {
        throw unauthenticated('token expired');
      }
      if (typeof payload.nbf === 'number' && payload.nbf - clockToleranceSec > t) {
        throw unauthenticated('token not yet valid');
      }
      return identityOf(payload);
    },
  };
}
