import type { X509Certificate } from 'node:crypto';
import Provider, { errors, interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import type { AccountStore } from './account-store.ts';
import { escapeHtml, page } from './html.ts';
import type { KeyManager } from './key-manager.ts';
import type { BrokerClientConfig, ResolvedBrokerOptions } from './options.ts';
import { isResource, MESH_SCOPES, RESOURCES } from './resources.ts';

export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** Client metadata for `oidc-provider` from the broker's client configuration. */
export function clientMetadata(c: BrokerClientConfig): Record<string, unknown> {
  const interactive = c.grantTypes.includes('authorization_code');
  return {
    client_id: c.clientId,
    ...(c.clientSecret ? { client_secret: c.clientSecret } : {}),
    token_endpoint_auth_method: c.auth,
    grant_types: c.grantTypes,
    response_types: interactive ? ['code'] : [],
    redirect_uris: interactive ? (c.redirectUris ?? []) : [],
    ...(c.redirectUris?.some((u) => u.startsWith('http:')) ? { application_type: 'native' } : {}),
    ...(c.jwks ? { jwks: c.jwks } : {}),
    ...(c.tlsSanUri ? { tls_client_auth_san_uri: c.tlsSanUri } : {}),
    ...(c.tlsSubjectDn ? { tls_client_auth_subject_dn: c.tlsSubjectDn } : {}),
    tls_client_certificate_bound_access_tokens: c.auth === 'tls_client_auth',
    scope: ['openid', 'offline_access', ...(c.scopes ?? MESH_SCOPES)].join(' '),
    id_token_signed_response_alg: 'ES256',
    bulwark_org: c.org,
    bulwark_roles: c.roles ?? [],
  };
}

function peerCertificate(ctx: KoaContextWithOIDC): X509Certificate | undefined {
  const socket = ctx.socket;
  if (typeof socket?.getPeerX509Certificate !== 'function') return undefined;
  return socket.getPeerX509Certificate();
}

export interface ProviderDeps {
  options: ResolvedBrokerOptions;
  issuer: string;
  Adapter: new (name: string) => unknown;
  keys: KeyManager;
  /** Cookie signing keys, newest first (it signs; all verify). */
  cookieKeys: string[];
  accounts: AccountStore;
  interactionPath: string;
}

/**
 * Builds the `oidc-provider` instance. Rebuilt (same storage, same cookie keys) whenever the
 * signing key set changes, because `oidc-provider` reads its JWKS once at construction.
 */
export function buildProvider(deps: ProviderDeps): Provider {
  const { options, keys, accounts } = deps;
  const ttl = options.accessTokenTtlSeconds;
  const clientsById = new Map(options.clients.map((c) => [c.clientId, c]));

  const provider = new Provider(deps.issuer, {
    // Clients live in the adapter (synced from configuration by the broker), not in the static
    // list, so revocation takes effect everywhere that shares the database.
    adapter: deps.Adapter,
    clients: [],
    jwks: keys.privateJwks(),
    cookies: {
      keys: deps.cookieKeys,
      names: {
        session: '_bulwark_session',
        interaction: '_bulwark_interaction',
        resume: '_bulwark_resume',
      },
    },
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    clientAuthMethods: ['none', 'private_key_jwt', 'tls_client_auth', 'client_secret_basic'],
    enabledJWA: {
      idTokenSigningAlgValues: ['ES256'],
      clientAuthSigningAlgValues: ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA'],
    },
    extraClientMetadata: { properties: ['bulwark_org', 'bulwark_roles'] },
    extraParams: ['org'],
    scopes: ['openid', 'offline_access', ...MESH_SCOPES],
    claims: { openid: ['sub'], email: ['email'], profile: ['name'], org: ['org', 'roles'] },
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    responseTypes: ['code'],
    ttl: {
      AccessToken: ttl,
      ClientCredentials: ttl,
      IdToken: ttl,
      AuthorizationCode: 60,
      DeviceCode: 600,
      RefreshToken: options.refreshTokenTtlSeconds,
      Interaction: 600,
      Session: options.refreshTokenTtlSeconds,
      Grant: options.refreshTokenTtlSeconds,
    },
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) =>
      client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => true,
    allowOmittingSingleRegisteredRedirectUri: false,
    interactions: {
      policy: loginPolicy(),
      url: (_ctx: unknown, interaction: { uid: string }) =>
        `${deps.interactionPath}/${interaction.uid}`,
    },
    findAccount: async (_ctx: unknown, sub: string) => {
      const account = await accounts.find(sub);
      if (!account) return undefined;
      return {
        accountId: sub,
        claims: () => ({
          sub,
          email: account.email,
          name: account.name,
          org: account.org,
          roles: account.roles,
        }),
      };
    },
    extraTokenClaims: async (_ctx: unknown, token: { accountId?: string; clientId: string }) => {
      if (token.accountId) {
        const account = await accounts.find(token.accountId);
        return account ? { org: account.org, roles: account.roles } : undefined;
      }
      const client = clientsById.get(token.clientId);
      return client?.org ? { org: client.org, roles: client.roles ?? [] } : undefined;
    },
    formats: {
      customizers: {
        // A service client's tokens name it like a person: `<org>/<client_id>`.
        jwt: (
          _ctx: unknown,
          token: { accountId?: string; clientId: string },
          jwt: { payload: Record<string, unknown> },
        ) => {
          const client = clientsById.get(token.clientId);
          if (!token.accountId && client?.org) jwt.payload.sub = `${client.org}/${client.clientId}`;
        },
      },
    },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      deviceFlow: {
        enabled: true,
        userCodeInputSource: deviceInputSource,
        userCodeConfirmSource: deviceConfirmSource,
        successSource: deviceSuccessSource,
      },
      resourceIndicators: {
        enabled: true,
        // Every access token names exactly one mesh audience.
        defaultResource: (_ctx: unknown, _client: unknown, oneOf?: string | string[]) => {
          if (oneOf) return oneOf;
          throw new errors.InvalidTarget('a resource indicator (resource parameter) is required');
        },
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, indicator: string) => {
          if (!isResource(indicator)) throw new errors.InvalidTarget('unknown resource');
          return {
            audience: indicator,
            scope: RESOURCES[indicator].join(' '),
            accessTokenTTL: ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256', kid: keys.active().kid } },
          };
        },
      },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        tlsClientAuth: true,
        getCertificate: (ctx: KoaContextWithOIDC) => {
          const cert = peerCertificate(ctx);
          return cert ? cert.toString() : undefined;
        },
        certificateAuthorized: (ctx: KoaContextWithOIDC) => ctx.socket?.authorized === true,
        certificateSubjectMatches: (
          ctx: KoaContextWithOIDC,
          property: string,
          expected: string,
        ) => {
          const cert = peerCertificate(ctx);
          if (!cert) return false;
          switch (property) {
            case 'tls_client_auth_san_uri':
              return (cert.subjectAltName ?? '')
                .split(', ')
                .some((entry) => entry === `URI:${expected}`);
            case 'tls_client_auth_subject_dn':
              return cert.subject.split('\n').join(',') === expected;
            default:
              return false;
          }
        },
      },
    },
    renderError: (ctx: KoaContextWithOIDC, out: Record<string, string>) => {
      ctx.type = 'html';
      ctx.body = page(
        'Sign-in failed',
        `<h1>Sign-in failed</h1><p class="error" role="alert">${escapeHtml(out.error ?? 'error')}: ${escapeHtml(out.error_description ?? '')}</p>
<p>Return to the application and start again. If this keeps happening, contact your administrator.</p>`,
      );
    },
  });
  return provider;
}

/**
 * The standard prompts, plus: a request naming an organisation (`org`) never rides on a session
 * of another organisation's account; the person signs in again (and is refused if their
 * email belongs elsewhere).
 */
function loginPolicy() {
  const policy = interactionPolicy.base();
  policy.get('login')!.checks.push(
    new interactionPolicy.Check(
      'org_mismatch',
      'the session belongs to another organisation',
      (ctx) => {
        const org = (ctx.oidc.params as { org?: unknown } | undefined)?.org;
        const accountId = (ctx.oidc as { session?: { accountId?: string } }).session?.accountId;
        return typeof org === 'string' && !!accountId && !accountId.startsWith(`${org}/`);
      },
    ),
  );
  return policy;
}

function deviceInputSource(
  ctx: KoaContextWithOIDC,
  form: string,
  _out: unknown,
  err?: Error,
): void {
  ctx.type = 'html';
  ctx.body = page(
    'Connect a device',
    `<h1>Connect a device</h1>
${err ? '<p class="error" role="alert">That code is not valid or has expired. Check it and try again.</p>' : ''}
<p id="code-help">Enter the code shown by <code>bulwark login</code>.</p>
${form.replace('name="user_code"', 'name="user_code" aria-label="Device code" aria-describedby="code-help"')}
<button type="submit" form="op.deviceInputForm">Continue</button>`,
  );
}

function deviceConfirmSource(
  ctx: KoaContextWithOIDC,
  form: string,
  client: { clientId: string },
  _info: unknown,
  userCode: string,
): void {
  ctx.type = 'html';
  // The form already holds confirm=yes: a named Allow button would send it twice, which the
  // provider refuses as a duplicated parameter (a real browser could never confirm).
  ctx.body = page(
    'Confirm the device',
    `<h1>Confirm the device</h1>
<p>The device showing code <strong>${escapeHtml(userCode)}</strong> (client ${escapeHtml(client.clientId)}) asks to act for you.</p>
${form}
<button type="submit" form="op.deviceConfirmForm">Allow</button>
<button type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Deny</button>`,
  );
}

function deviceSuccessSource(ctx: KoaContextWithOIDC): void {
  ctx.type = 'html';
  ctx.body = page(
    'Device connected',
    '<h1>Device connected</h1><p>You can close this window and return to the terminal.</p>',
  );
}
