import { decodeJwt, decodeProtectedHeader, type JWTHeaderParameters } from 'jose';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type Provider from 'oidc-provider';
import { TokenError } from '../mesh/tokens/index.ts';
import type { AccountStore } from './account-store.ts';
import type { Auditor } from './auditor.ts';
import type { OrganisationConfig } from './options.ts';
import { isResource, RESOURCES } from './resources.ts';
import { mapRoles } from './role-mapping.ts';
import { TOKEN_EXCHANGE_GRANT } from './provider-config.ts';
import { createSubjectTokenVerifier } from './subject-tokens.ts';

const JWT_TYPES = new Set([
  'urn:ietf:params:oauth:token-type:jwt',
  'urn:ietf:params:oauth:token-type:access_token',
  'urn:ietf:params:oauth:token-type:id_token',
]);
const DEFAULT_ALGS = ['ES256', 'RS256', 'PS256', 'EdDSA'];
/** Grants remembered for reuse (least recently created dropped first). */
const MAX_REUSED_GRANTS = 10_000;

export interface TokenExchangeDeps {
  organisations: readonly OrganisationConfig[];
  accounts: AccountStore;
  auditor: Auditor;
  fetchFn: typeof fetch;
  now: () => number;
  accessTokenTtlSeconds: number;
  activeKid: () => string;
}

/**
 * Registers RFC 8693 token exchange: a partner service trades a JWT from its own IdP for a
 * mesh access token. The subject token must come from one of the client organisation's
 * trusted issuers, be signed (asymmetric algorithms only) by a key from that issuer's JWKS, be
 * unexpired, and carry exactly the audience the organisation's configuration names.
 */
export function registerTokenExchange(provider: Provider, deps: TokenExchangeDeps): void {
  const byId = new Map(deps.organisations.map((o) => [o.id, o]));
  const subjects = createSubjectTokenVerifier({ fetchFn: deps.fetchFn, now: deps.now });

  // The grant behind an exchanged token is bookkeeping (JWT access tokens are never looked up
  // by it): exchanges for the same account, client, resource and scope within one token
  // lifetime share one grant row instead of writing one each. The row is kept for two
  // lifetimes, so it outlives every token that names it.
  const grants = new Map<string, { id: string; reuseUntil: number }>();
  async function grantFor(accountId: string, clientId: string, resource: string, scope: string) {
    const key = JSON.stringify([accountId, clientId, resource, scope]);
    const ttl = deps.accessTokenTtlSeconds;
    const known = grants.get(key);
    // Real time, as oidc-provider and the adapter use for the grant's own expiry.
    if (known && known.reuseUntil > Date.now()) return known.id;
    const grant = new provider.Grant({ accountId, clientId });
    grant.addResourceScope(resource, scope);
    const id = await grant.save(2 * ttl);
    grants.delete(key);
    grants.set(key, { id, reuseUntil: Date.now() + ttl * 1000 });
    if (grants.size > MAX_REUSED_GRANTS) grants.delete(grants.keys().next().value!);
    return id;
  }

  async function handler(ctx: KoaContextWithOIDC): Promise<void> {
    const params = ctx.oidc.params as Record<string, string | undefined>;
    const client = ctx.oidc.client!;
    const metadata = client.metadata();
    const orgId = typeof metadata.bulwark_org === 'string' ? metadata.bulwark_org : undefined;
    const resource = params.resource;
    const actor = {
      clientId: client.clientId,
      org: orgId,
      sourceAddress: ctx.req.socket.remoteAddress,
    };
    const refuse = async (reason: string, error: Error): Promise<never> => {
      await deps.auditor.record({
        action: 'token.exchange',
        outcome: 'failure',
        reason,
        actor,
        target: { resource, grantType: TOKEN_EXCHANGE_GRANT },
      });
      throw error;
    };

    const org = orgId ? byId.get(orgId) : undefined;
    if (!org)
      return refuse(
        'client has no organisation',
        new errors.InvalidGrant('token exchange is not enabled for this client'),
      );
    if (!params.subject_token || !params.subject_token_type) {
      return refuse(
        'missing subject token',
        new errors.InvalidRequest('subject_token and subject_token_type are required'),
      );
    }
    if (!JWT_TYPES.has(params.subject_token_type)) {
      return refuse(
        'unsupported subject token type',
        new errors.InvalidRequest('unsupported subject_token_type'),
      );
    }
    if (
      params.requested_token_type &&
      params.requested_token_type !== 'urn:ietf:params:oauth:token-type:access_token'
    ) {
      return refuse(
        'unsupported requested token type',
        new errors.InvalidRequest('unsupported requested_token_type'),
      );
    }
    if (params.actor_token || params.actor_token_type) {
      // Delegation (acting for someone else) is not offered: refuse rather than ignore it.
      return refuse(
        'delegation not supported',
        new errors.InvalidRequest('actor_token is not supported'),
      );
    }
    if (!isResource(resource))
      return refuse('unknown resource', new errors.InvalidTarget('unknown or missing resource'));

    let header: JWTHeaderParameters;
    let unverified: { iss?: string };
    try {
      header = decodeProtectedHeader(params.subject_token) as JWTHeaderParameters;
      unverified = decodeJwt(params.subject_token);
    } catch {
      return refuse(
        'subject token malformed',
        new errors.InvalidGrant('subject_token is not a JWT'),
      );
    }
    const trusted = (org.trustedIssuers ?? []).find((t) => t.issuer === unverified.iss);
    if (!trusted)
      return refuse(
        'subject token issuer not trusted',
        new errors.InvalidGrant('subject_token issuer is not trusted'),
      );
    const algorithms = trusted.algorithms ?? DEFAULT_ALGS;
    if (!header.alg || !algorithms.includes(header.alg)) {
      return refuse(
        'subject token algorithm not allowed',
        new errors.InvalidGrant('subject_token algorithm is not allowed'),
      );
    }

    let claims: Record<string, unknown>;
    try {
      claims = await subjects.verify(trusted, algorithms, params.subject_token);
    } catch (err) {
      const code = err instanceof TokenError ? err.code : undefined;
      const reason =
        code === 'ERR_TOKEN_EXPIRED'
          ? 'subject token expired'
          : code === 'ERR_TOKEN_CLAIM_INVALID' && (err as TokenError).claim === 'aud'
            ? 'subject token audience not accepted'
            : code === 'ERR_TOKEN_SIGNATURE_INVALID'
              ? 'subject token signature invalid'
              : 'subject token invalid';
      return refuse(reason, new errors.InvalidGrant(reason));
    }

    const allowedForResource = new Set<string>(RESOURCES[resource]);
    const clientScopes = new Set(String(metadata.scope ?? '').split(' '));
    // Without a scope parameter: everything the client may have at this resource.
    const requested = params.scope
      ? params.scope.split(' ').filter(Boolean)
      : [...allowedForResource].filter((s) => clientScopes.has(s));
    if (requested.length === 0) {
      return refuse(
        'scope not allowed',
        new errors.InvalidScope('no scope of this resource is allowed for the client'),
      );
    }
    for (const s of requested) {
      if (!allowedForResource.has(s) || !clientScopes.has(s)) {
        return refuse(
          'scope not allowed',
          new errors.InvalidScope('requested scope is not allowed', s),
        );
      }
    }

    const accountId = `${org.id}/${String(claims.sub)}`;
    await deps.accounts.upsert({
      accountId,
      org: org.id,
      email: typeof claims.email === 'string' ? claims.email : undefined,
      roles: mapRoles(claims, org.roleMapping, org.defaultRoles),
    });
    const grantId = await grantFor(accountId, client.clientId, resource, requested.join(' '));
    const token = new provider.AccessToken({
      accountId,
      client,
      grantId,
      gty: 'token_exchange',
      scope: requested.join(' '),
    });
    token.resourceServer = {
      audience: resource,
      scope: RESOURCES[resource].join(' '),
      accessTokenTTL: deps.accessTokenTtlSeconds,
      accessTokenFormat: 'jwt',
      jwt: { sign: { alg: 'ES256', kid: deps.activeKid() } },
      identifier: () => resource,
    };
    if (client.tlsClientCertificateBoundAccessTokens) {
      const pem = ctx.socket.getPeerX509Certificate?.()?.toString();
      if (!pem)
        return refuse(
          'client certificate missing',
          new errors.InvalidGrant('mutual TLS client certificate not provided'),
        );
      token.setThumbprint('x5t', pem);
    }
    ctx.oidc.entity('AccessToken', token);
    const value = await token.save();
    await deps.auditor.record({
      action: 'token.exchange',
      outcome: 'success',
      actor: { ...actor, sub: accountId },
      target: { resource, scope: token.scope, tokenId: token.jti, grantType: TOKEN_EXCHANGE_GRANT },
    });
    ctx.body = {
      access_token: value,
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      token_type: 'Bearer',
      expires_in: token.expiration,
      scope: token.scope,
    };
  }

  provider.registerGrantType(TOKEN_EXCHANGE_GRANT, handler, [
    'subject_token',
    'subject_token_type',
    'requested_token_type',
    'resource',
    'audience',
    'scope',
    'actor_token',
    'actor_token_type',
  ]);
}
