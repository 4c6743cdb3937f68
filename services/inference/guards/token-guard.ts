/**
 * Step 2 of the guard pipeline: the bearer access token. Checks the signature against the
 * broker's JWKS (a key source injected by the caller: `createRemoteJWKSet` caches and
 * refreshes it), `typ: at+jwt`, the allowed algorithms only, `iss`, `aud`, `exp`/`nbf` with a
 * small skew, and the RFC 8705 certificate binding: a token carrying `cnf.x5t#S256` must come
 * over a connection with exactly that client certificate, and a partner client that presents
 * its own certificate must use a token bound to it.
 */
import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import { createJwtVerifier, TokenError, type JwtAlgorithm } from '../../../mesh/tokens/index.ts';
import type { PeerIdentity } from '../../../mesh/kit/index.ts';
import { InferenceError } from '../errors.ts';

/** Who the caller is, from a verified token. */
export interface Caller {
  /** `<org>/<upstream sub>`. */
  subject: string;
  org: string;
  roles: string[];
  scopes: string[];
  clientId: string;
  jti: string;
  acr?: string;
  /** Whether the token was bound to (and matched) the connection's client certificate. */
  certificateBound: boolean;
}

export interface TokenGuardOptions {
  /** Expected `iss` (the identity broker's issuer URL). */
  issuer: string;
  /** Expected `aud`. Default `urn:bulwark:inference`. */
  audience?: string;
  /** JWKS key source (`createRemoteJWKSet(url)` or `createLocalJWKSet(jwks)`). */
  keys: JWTVerifyGetKey;
  /** Allowed algorithms. Default `['ES256', 'EdDSA']`. */
  algorithms?: string[];
  /** Allowed clock skew in seconds. Default 30. */
  clockToleranceSec?: number;
  /** Clock. Default real time. */
  now?: () => Date;
  /**
   * Verified tokens remembered (by their exact text) so a client re-using its token does not
   * pay a signature check per call; `exp`/`nbf` are still checked on every use. Default 10000;
   * 0 disables.
   */
  cacheSize?: number;
  /**
   * Whether a peer with this SPIFFE ID is a partner client whose tokens must be
   * certificate-bound. Default: any ID outside `/svc/` (mesh workloads such as the gateway
   * forward end users' unbound tokens).
   */
  requiresBoundToken?: (spiffeId: string) => boolean;
}

const unauthenticated = (message: string, cause?: unknown) =>
  new InferenceError('ERR_INFERENCE_UNAUTHENTICATED', message, { cause });

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

export interface TokenGuard {
  /** Verifies the `authorization` metadata value for a call from `peer`. */
  verify(authorization: string | undefined, peer: PeerIdentity): Promise<Caller>;
}

/**
 * @example
 * ```ts
 * const tokens = createTokenGuard({ issuer, keys: createRemoteJWKSet(new URL(jwksUri)) });
 * const caller = await tokens.verify(call.metadata.get('authorization')[0]?.toString(), peerIdentity(call));
 * ```
 */
export function createTokenGuard(options: TokenGuardOptions): TokenGuard {
  const config = {
    audience: 'urn:bulwark:inference',
    algorithms: ['ES256', 'EdDSA'],
    clockToleranceSec: 30,
    now: () => new Date(),
    requiresBoundToken: (id: string) => !/^spiffe:\/\/[^/]+\/svc\//.test(id),
    cacheSize: 10_000,
    ...options,
  };
  if (!config.issuer) throw new Error('createTokenGuard: option "issuer" is required');
  // Verified tokens are remembered by their exact text; every use re-checks the time window
  // and that the verifying key is still published (see mesh/tokens).
  const jwt = createJwtVerifier({
    issuer: config.issuer,
    audience: config.audience,
    keys: config.keys,
    algorithms: config.algorithms as JwtAlgorithm[],
    typ: 'at+jwt',
    requiredClaims: ['exp', 'sub', 'iat'],
    clockToleranceSec: config.clockToleranceSec,
    now: config.now,
    cacheSize: config.cacheSize,
  });
  const verifyJwt = async (token: string): Promise<JWTPayload> => {
    try {
      return (await jwt.verify(token)).payload;
    } catch (err) {
      throw unauthenticated(describeTokenError(err, config.audience), err);
    }
  };

  return {
    async verify(authorization, peer) {
      const match = /^Bearer ([A-Za-z0-9_\-.]+)$/.exec(authorization ?? '');
      if (!match) throw unauthenticated('missing or malformed bearer token');
      const payload = await verifyJwt(match[1]!);
      const { sub, org } = payload;
      if (typeof sub !== 'string' || typeof org !== 'string' || !sub.startsWith(`${org}/`)) {
        throw unauthenticated('token subject must be "<org>/<sub>" with a matching org claim');
      }
      const cnf = payload['cnf'] as Record<string, unknown> | undefined;
      const bound = typeof cnf?.['x5t#S256'] === 'string' ? (cnf['x5t#S256'] as string) : undefined;
      if (bound !== undefined && bound !== peer.certificateThumbprint) {
        throw unauthenticated('token is bound to a different client certificate');
      }
      if (bound === undefined && peer.spiffeId && config.requiresBoundToken(peer.spiffeId)) {
        throw unauthenticated('this client must use a token bound to its certificate (RFC 8705)');
      }
      const scope = payload['scope'];
      return {
        subject: sub,
        org,
        roles: strings(payload['roles']),
        scopes: typeof scope === 'string' ? scope.split(' ').filter(Boolean) : strings(scope),
        clientId: typeof payload['client_id'] === 'string' ? payload['client_id'] : '',
        jti: typeof payload.jti === 'string' ? payload.jti : '',
        ...(typeof payload['acr'] === 'string' ? { acr: payload['acr'] } : {}),
        certificateBound: bound !== undefined,
      };
    },
  };
}

function describeTokenError(err: unknown, audience: string): string {
  if (!(err instanceof TokenError)) return 'token is invalid';
  switch (err.code) {
    case 'ERR_TOKEN_EXPIRED':
      return 'token has expired';
    case 'ERR_TOKEN_NOT_YET_VALID':
      return 'token is not yet valid';
    case 'ERR_TOKEN_TYPE_NOT_ALLOWED':
      return 'token type must be at+jwt';
    case 'ERR_TOKEN_ALGORITHM_NOT_ALLOWED':
      return 'token algorithm is not allowed';
    case 'ERR_TOKEN_SIGNATURE_INVALID':
      return 'token signature is invalid';
    case 'ERR_TOKEN_KEY_NOT_FOUND':
      return 'token signing key is unknown';
    case 'ERR_TOKEN_KEYS_UNAVAILABLE':
      return "the broker's signing keys are unavailable";
    case 'ERR_TOKEN_CLAIM_INVALID':
      if (err.claim === 'aud') return `token audience is not ${audience}`;
      if (err.claim === 'iss') return 'token issuer is not trusted';
      return `token claim ${err.claim ?? ''} is invalid`;
    default:
      return 'token is invalid';
  }
}

/** Refuses a caller without a scope (PERMISSION_DENIED). */
export function requireScope(caller: Caller, scope: string): void {
  if (!caller.scopes.includes(scope)) {
    throw new InferenceError('ERR_INFERENCE_PERMISSION_DENIED', `token lacks the ${scope} scope`);
  }
}
