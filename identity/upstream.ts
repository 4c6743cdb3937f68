import * as client from 'openid-client';
import { IdentityError } from './errors.ts';
import type { OrganisationConfig } from './options.ts';

/** What the broker remembers between the upstream redirect and the callback. */
export interface UpstreamTransaction {
  state: string;
  nonce: string;
  codeVerifier: string;
}

/** Federation with partner IdPs (authorization code + PKCE + state + nonce). */
export interface Upstream {
  /** Builds the upstream authorization URL; throws `ERR_IDENTITY_UPSTREAM_UNAVAILABLE`. */
  begin(
    org: OrganisationConfig,
    loginHint?: string,
  ): Promise<{ url: URL; transaction: UpstreamTransaction }>;
  /**
   * Redeems the code and validates the ID token (issuer, audience, nonce, expiry, signature).
   * Returns the ID token claims.
   */
  finish(
    org: OrganisationConfig,
    callbackUrl: URL,
    transaction: UpstreamTransaction,
  ): Promise<Record<string, unknown>>;
}

/**
 * @param fetchFn - `fetch` that trusts the upstream CAs and times out.
 * @param skewSeconds - difference between the broker's clock and the real one, so ID token
 *   expiry is judged by the injected clock.
 */
export function createUpstream(options: {
  redirectUri: string;
  fetchFn: typeof fetch;
  timeoutMs: number;
  skewSeconds: () => number;
}): Upstream {
  const configs = new Map<string, Promise<client.Configuration>>();

  function configFor(org: OrganisationConfig): Promise<client.Configuration> {
    let pending = configs.get(org.id);
    if (!pending) {
      pending = client
        .discovery(
          new URL(org.issuer),
          org.clientId,
          undefined,
          client.ClientSecretBasic(org.clientSecret),
          {
            [client.customFetch]: options.fetchFn as client.CustomFetch,
            timeout: Math.max(1, Math.ceil(options.timeoutMs / 1000)),
            ...(org.issuer.startsWith('http:') ? { execute: [client.allowInsecureRequests] } : {}),
          },
        )
        .catch((err: unknown) => {
          configs.delete(org.id);
          throw new IdentityError(
            'ERR_IDENTITY_UPSTREAM_UNAVAILABLE',
            `the identity provider of ${org.displayName} did not answer`,
            { cause: err },
          );
        });
      configs.set(org.id, pending);
    }
    return pending;
  }

  return {
    async begin(org, loginHint) {
      const config = await configFor(org);
      const transaction: UpstreamTransaction = {
        state: client.randomState(),
        nonce: client.randomNonce(),
        codeVerifier: client.randomPKCECodeVerifier(),
      };
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: options.redirectUri,
        scope: org.upstreamScope ?? 'openid email profile groups',
        response_type: 'code',
        code_challenge: await client.calculatePKCECodeChallenge(transaction.codeVerifier),
        code_challenge_method: 'S256',
        state: transaction.state,
        nonce: transaction.nonce,
        ...(loginHint ? { login_hint: loginHint } : {}),
      });
      return { url, transaction };
    },

    async finish(org, callbackUrl, transaction) {
      const discovered = await configFor(org);
      // A configuration per callback so ID token expiry is judged by the broker's clock.
      const config = new client.Configuration(
        discovered.serverMetadata(),
        org.clientId,
        { [client.clockSkew]: options.skewSeconds() },
        client.ClientSecretBasic(org.clientSecret),
      );
      config[client.customFetch] = options.fetchFn as client.CustomFetch;
      config.timeout = Math.max(1, Math.ceil(options.timeoutMs / 1000));
      if (org.issuer.startsWith('http:')) client.allowInsecureRequests(config);
      try {
        const tokens = await client.authorizationCodeGrant(config, callbackUrl, {
          pkceCodeVerifier: transaction.codeVerifier,
          expectedState: transaction.state,
          expectedNonce: transaction.nonce,
          idTokenExpected: true,
        });
        const claims = tokens.claims();
        if (!claims) throw new Error('no ID token');
        return claims as Record<string, unknown>;
      } catch (err) {
        if (err instanceof client.AuthorizationResponseError) {
          throw new IdentityError(
            'ERR_IDENTITY_UPSTREAM_REFUSED',
            `the identity provider of ${org.displayName} refused the sign-in`,
            { cause: err },
          );
        }
        const code = (err as { code?: string }).code;
        const unreachable =
          err instanceof client.ClientError &&
          (code === undefined ||
            code === 'OAUTH_TIMEOUT' ||
            code === 'OAUTH_ABORT' ||
            code === 'OAUTH_RESPONSE_IS_NOT_CONFORM');
        if (
          !unreachable &&
          (err instanceof client.ClientError || err instanceof client.ResponseBodyError)
        ) {
          throw new IdentityError(
            'ERR_IDENTITY_ID_TOKEN_INVALID',
            `the answer from the identity provider of ${org.displayName} failed validation`,
            { cause: err },
          );
        }
        throw new IdentityError(
          'ERR_IDENTITY_UPSTREAM_UNAVAILABLE',
          `the identity provider of ${org.displayName} did not answer`,
          { cause: err },
        );
      }
    },
  };
}
