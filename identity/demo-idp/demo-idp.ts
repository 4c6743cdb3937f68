import { randomBytes, timingSafeEqual, generateKeyPairSync } from 'node:crypto';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Provider from 'oidc-provider';
import { escapeHtml, page, readForm, sendHtml } from '../html.ts';
import { openSqliteAdapterStore } from '../sqlite-adapter.ts';
import { DEMO_USERS, type DemoUser } from './users.ts';

/** A client registered at a demo IdP (the broker, or a partner back-end service). */
export interface DemoIdpClient {
  client_id: string;
  client_secret: string;
  redirect_uris?: string[];
  grant_types?: string[];
}

export interface DemoIdpOptions {
  /** Organisation id, e.g. `acme`; picks the default users and names the cookies. */
  org: string;
  /** Name on the login page. Default: the org id. */
  displayName?: string;
  /** TLS certificate and key (PEM). Without them the IdP serves plain HTTP (loopback demos only). */
  tls?: { cert: string; key: string };
  /** Registered clients. */
  clients: DemoIdpClient[];
  /** People who can log in. Default: `DEMO_USERS[org]`. */
  users?: readonly DemoUser[];
  /** Password every demo user logs in with. */
  password: string;
  /** Private signing JWKS (ES256). Default: a fresh key pair. */
  jwks?: { keys: Record<string, unknown>[] };
  /** Listen address. Default `127.0.0.1`, port 0 (any free port). */
  host?: string;
  port?: number;
  /**
   * Public issuer URL when it differs from the listen address (a container listening on
   * `0.0.0.0` is reached as `https://acme:7451`). Default `<scheme>://<host>:<bound port>`.
   */
  issuer?: string;
}

/** A running demo partner IdP. */
export interface DemoIdp {
  readonly org: string;
  /** Issuer URL (`https://127.0.0.1:<port>`). */
  readonly issuer: string;
  close(): Promise<void>;
}

/**
 * Starts a small OpenID provider that stands in for a partner organisation's own IdP in
 * development and tests: a login page, ID tokens with `email` and `groups`, and client
 * credentials tokens (JWT, audience from the `resource` parameter) for token exchange.
 *
 * @example
 * ```ts
 * const idp = await startDemoIdp({ org: 'acme', tls, password: 'pw', clients: [...] });
 * console.log(idp.issuer);
 * ```
 */
export async function startDemoIdp(options: DemoIdpOptions): Promise<DemoIdp> {
  const users = options.users ?? DEMO_USERS[options.org] ?? [];
  const store = openSqliteAdapterStore({ path: ':memory:' });
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.writeHead(503).end();
  };
  const serve = (req: IncomingMessage, res: ServerResponse) => handler(req, res);
  const server: Server = options.tls
    ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, serve)
    : createHttpServer(serve);
  await new Promise<void>((resolve) =>
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve),
  );
  const { port } = server.address() as AddressInfo;
  const issuer = (
    options.issuer ?? `${options.tls ? 'https' : 'http'}://${options.host ?? '127.0.0.1'}:${port}`
  ).replace(/\/$/, '');

  const jwks =
    options.jwks ??
    ({
      keys: [
        {
          ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
            format: 'jwk',
          }),
          alg: 'ES256',
          use: 'sig',
        },
      ],
    } as { keys: Record<string, unknown>[] });

  const findUser = (sub: string): DemoUser | undefined => users.find((u) => u.sub === sub);
  const provider = new Provider(issuer, {
    adapter: store.Adapter,
    clients: options.clients.map((c) => {
      const grantTypes = c.grant_types ?? ['authorization_code'];
      const interactive = grantTypes.includes('authorization_code');
      return {
        ...c,
        grant_types: grantTypes,
        response_types: interactive ? ['code'] : [],
        redirect_uris: interactive ? (c.redirect_uris ?? []) : [],
        token_endpoint_auth_method: 'client_secret_basic',
      };
    }),
    jwks,
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    cookies: {
      keys: [randomBytes(32).toString('base64url')],
      names: {
        session: `${options.org}_session`,
        interaction: `${options.org}_interaction`,
        resume: `${options.org}_resume`,
      },
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    ttl: {
      AccessToken: 300,
      ClientCredentials: 300,
      IdToken: 300,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        getResourceServerInfo: (_ctx: unknown, resource: string) => ({
          audience: resource,
          scope: 'bulwark',
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        }),
      },
    },
    findAccount: (_ctx: unknown, sub: string) => {
      const user = findUser(sub);
      if (!user) return undefined;
      return {
        accountId: sub,
        claims: () => ({
          sub,
          email: user.email,
          email_verified: true,
          name: user.name,
          groups: user.groups,
        }),
      };
    },
    renderError: (ctx: { type: string; body: string }, out: Record<string, string>) => {
      ctx.type = 'html';
      ctx.body = page(
        'Sign-in error',
        `<h1>Sign-in error</h1><p class="error">${escapeHtml(out.error)}</p>`,
      );
    },
  });
  const oidc = provider.callback();
  const password = Buffer.from(options.password);
  const title = `${options.displayName ?? options.org} sign-in`;

  async function interaction(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'POST') {
      const form = await readForm(req);
      const user = users.find((u) => u.username === form.get('username'));
      const given = Buffer.from(form.get('password') ?? '');
      const ok = user && given.length === password.length && timingSafeEqual(given, password);
      if (!ok) {
        sendHtml(res, 401, loginPage(title, details.uid, 'Unknown user name or wrong password.'));
        return;
      }
      await provider.interactionFinished(req, res, { login: { accountId: user.sub } });
      return;
    }
    if (details.prompt.name === 'login') {
      sendHtml(res, 200, loginPage(title, details.uid));
      return;
    }
    // A demo IdP consents on the user's behalf to everything the (pre-registered) client asks.
    const grant = new provider.Grant({
      accountId: details.session?.accountId,
      clientId: details.params.client_id,
    });
    grant.addOIDCScope(String(details.params.scope ?? 'openid'));
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } });
  }

  handler = (req, res) => {
    if (req.url?.startsWith('/interaction/')) {
      interaction(req, res).catch(() => {
        sendHtml(
          res,
          400,
          page(title, '<h1>Sign-in expired</h1><p>Start again from the application.</p>'),
        );
      });
      return;
    }
    oidc(req, res);
  };

  return {
    org: options.org,
    issuer,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      store.close();
    },
  };
}

function loginPage(title: string, uid: string, error?: string): string {
  return page(
    title,
    `<h1>${escapeHtml(title)}</h1>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}">
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>`,
  );
}
