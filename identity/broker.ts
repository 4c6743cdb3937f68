import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type Provider from 'oidc-provider';
import type { AccountStore } from './account-store.ts';
import { createAuditor } from './auditor.ts';
import { IdentityError } from './errors.ts';
import type { KeySwitch, SigningKeyInfo } from './key-manager.ts';
import { openKeyManager } from './key-manager.ts';
import { createLoginRoutes } from './login-routes.ts';
import { resolveBrokerOptions, type BrokerOptions, type OrganisationConfig } from './options.ts';
import { buildProvider, clientMetadata } from './provider-config.ts';
import { attachProviderAudit } from './provider-audit.ts';
import { attachPrivilegedIssuanceGuard } from './privileged-guard.ts';
import { traceHttp } from './http-tracing.ts';
import { openSqliteIdentityStore } from './sqlite-store.ts';
import { createTlsFetch } from './tls-fetch.ts';
import { registerTokenExchange } from './token-exchange.ts';
import { createUpstream } from './upstream.ts';
import { guardTokenRequestScope, unknownScope } from './scope-guard.ts';
import { sendHtml } from './html.ts';
import { errorPage } from './login-pages.ts';

/** A running identity broker. */
export interface Broker {
  /** The issuer URL (also the base URL of every endpoint). */
  readonly issuer: string;
  /** Where this instance listens (differs from `issuer` behind a load balancer). */
  readonly url: string;
  /** Public signing keys now in the JWKS, the active one first. */
  signingKeys(): SigningKeyInfo[];
  /**
   * Rotates on demand (a key may be compromised): the new key signs at once on this replica,
   * without the publish-ahead of the scheduled rotation, so other replicas publish it only at
   * their next key check. The old key stays published until its tokens expire; a key
   * scheduled but not yet signing is dropped.
   */
  rotateSigningKeys(reason?: string): Promise<SigningKeyInfo[]>;
  /**
   * Runs the rotation schedule now (the timer calls this every `keyCheckIntervalMs`): reloads
   * the keys, publishes the next key `keyPublishLeadMs` before the signing one reaches
   * `keyRotationSeconds` (it then signs on every replica from its activation time, with no
   * further write) and drops keys whose tokens have all expired.
   */
  checkKeyRotation(): Promise<void>;
  /** Organisations without secrets (for the admin API). */
  organisations(): Omit<OrganisationConfig, 'clientSecret'>[];
  /**
   * Serves a new certificate (mesh SVIDs live 24 h) on new connections, without a restart.
   * Open connections keep the old one until they close.
   */
  updateTls(tls: { cert: string; key: string; ca?: string[] }): void;
  /** Revokes a client: removes its grants and tokens and refuses it from now on. */
  revokeClient(clientId: string, reason?: string): Promise<number>;
  close(): Promise<void>;
}

/**
 * Starts the identity broker: an OpenID provider over HTTPS (mTLS optional per client) that
 * federates partner IdPs and issues short-lived, audience-scoped mesh tokens.
 *
 * @example
 * ```ts
 * const broker = await createBroker({
 *   tls: { cert, key, ca: [meshCaPem] },
 *   databasePath: '/var/lib/bulwark/identity.db',
 *   organisations: [acme],
 *   clients: [{ clientId: 'bulwark-cli', auth: 'none', grantTypes: [DEVICE_CODE_GRANT, 'refresh_token'] }],
 * });
 * console.log(`${broker.issuer}/.well-known/openid-configuration`);
 * ```
 */
export async function createBroker(input: BrokerOptions): Promise<Broker> {
  const options = resolveBrokerOptions(input);
  const { now } = options;
  const store = options.store ?? openSqliteIdentityStore(options.databasePath);
  const accounts: AccountStore = {
    upsert: (account) => store.upsertAccount(account, now()),
    find: (accountId) => store.findAccount(accountId),
  };
  // Read once: a key prepended to the store later (rotation) signs from the next start on.
  const cookieKeys = options.cookieKeys ?? (await store.cookieKeys());
  const keys = await openKeyManager({
    store,
    now,
    rotationSeconds: options.keyRotationSeconds,
    publishLeadMs: options.keyPublishLeadMs,
    // Anything a key signs (access, client credentials and ID tokens) lives at most this long.
    retainSeconds: options.accessTokenTtlSeconds + 60,
  });
  const auditor = createAuditor({
    sink: options.audit,
    logger: options.logger,
    now,
    metrics: options.metrics,
  });

  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.writeHead(503).end();
  };
  const server: Server = createServer(
    {
      cert: options.tls.cert,
      key: options.tls.key,
      ca: options.tls.ca,
      // Client certificates are optional at the handshake; tls_client_auth clients need one.
      requestCert: true,
      rejectUnauthorized: false,
    },
    (req, res) => handler(req, res),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const issuer =
    options.issuer ??
    `https://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`;

  const fetchFn = createTlsFetch({
    ca: options.upstream.ca.length ? options.upstream.ca : undefined,
    timeoutMs: options.upstream.timeoutMs,
  });
  const upstream = createUpstream({
    redirectUri: `${issuer}/login/callback`,
    fetchFn,
    timeoutMs: options.upstream.timeoutMs,
    skewSeconds: () => Math.round((now() - Date.now()) / 1000),
  });
  const pendingModel = new store.Adapter('UpstreamLogin');

  // The store leaves out revoked clients itself (see IdentityStore.syncClients).
  const syncClients = () => store.syncClients(options.clients.map(clientMetadata));
  await syncClients();

  function build(): Provider {
    const provider = buildProvider({
      options,
      issuer,
      Adapter: store.Adapter,
      keys,
      cookieKeys,
      accounts,
      interactionPath: '/login',
    });
    registerTokenExchange(provider, {
      organisations: options.organisations,
      accounts,
      auditor,
      fetchFn,
      now,
      accessTokenTtlSeconds: options.accessTokenTtlSeconds,
      activeKid: () => keys.active().kid,
    });
    attachProviderAudit(provider, auditor);
    attachPrivilegedIssuanceGuard(provider, auditor);
    return provider;
  }
  let provider = build();
  let oidc = provider.callback();
  const rebuild = () => {
    provider = build();
    oidc = provider.callback();
  };

  const login = createLoginRoutes({
    provider: () => provider,
    organisations: options.organisations,
    upstream,
    accounts,
    auditor,
    pending: pendingModel as never,
    issuer,
  });

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // A scheduled key reached its activation time (or an old key its removal time): switch
    // on the dot, not at the next key check, so replicas sign with the same key.
    if (keys.stale()) rebuild();
    const url = new URL(req.url ?? '/', issuer);
    if (await login(req, res, url)) return;
    const form =
      req.method === 'POST' &&
      (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded');
    if (form && (url.pathname === '/token' || url.pathname === '/device/auth')) {
      const guard = await guardTokenRequestScope(req, res);
      if (guard.rejected) {
        await auditor.record({
          action: 'token.refuse',
          outcome: 'failure',
          reason: guard.reason,
          actor: { clientId: guard.clientId, sourceAddress: req.socket.remoteAddress },
        });
        return;
      }
    }
    if (
      req.method === 'GET' &&
      url.pathname === '/auth' &&
      unknownScope(url.searchParams.get('scope') ?? undefined)
    ) {
      await auditor.record({
        action: 'token.refuse',
        outcome: 'failure',
        reason: 'invalid_scope',
        actor: {
          clientId: url.searchParams.get('client_id') ?? undefined,
          sourceAddress: req.socket.remoteAddress,
        },
      });
      sendHtml(
        res,
        400,
        errorPage(
          'Sign-in failed',
          'invalid_scope: the application asked for a permission Bulwark does not know.',
          "Tell the application's developers; there is nothing to do on your side.",
        ),
      );
      return;
    }
    oidc(req, res);
  }

  const serveRequest = (req: IncomingMessage, res: ServerResponse) => {
    route(req, res).catch((err: unknown) => {
      auditor.log(err, 'request failed');
      if (!res.headersSent) res.writeHead(500).end();
    });
  };
  handler = options.tracing ? traceHttp(options.tracing, serveRequest) : serveRequest;

  const iso = (ms: number) => new Date(ms).toISOString();
  // Times and kids only: never key material.
  const rotationTarget = (change: KeySwitch) => ({
    kid: change.active.kid,
    publishedAt: iso(change.active.createdAt),
    activatesAt: iso(change.active.activatesAt),
    previousKid: change.retired?.kid,
  });
  async function auditRotation(reason: string, change: KeySwitch) {
    await auditor.record({
      action: 'key.rotate',
      outcome: 'success',
      reason,
      actor: {},
      target: rotationTarget(change),
    });
  }

  async function checkKeyRotation() {
    const { scheduled, activated, changed } = await keys.tick();
    if (changed) rebuild();
    // Recorded by the replica that published the next key...
    if (scheduled) {
      await auditor.record({
        action: 'key.publish',
        outcome: 'success',
        reason: 'scheduled',
        actor: {},
        target: rotationTarget(scheduled),
      });
    }
    // ...and by each replica when it starts signing with it.
    if (activated) await auditRotation('scheduled', activated);
  }
  const timer =
    options.keyCheckIntervalMs > 0
      ? setInterval(
          () => void checkKeyRotation().catch((err) => auditor.log(err, 'key rotation failed')),
          options.keyCheckIntervalMs,
        )
      : undefined;
  timer?.unref();
  const sweeper = setInterval(
    () => void store.sweep().catch((err) => auditor.log(err, 'sweep failed')),
    60_000,
  );
  sweeper.unref();

  return {
    issuer,
    url: `https://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`,
    signingKeys: () => keys.published(),
    async rotateSigningKeys(reason = 'on demand') {
      const rotated = await keys.rotate();
      rebuild();
      await auditRotation(reason, rotated);
      return keys.published();
    },
    checkKeyRotation,
    updateTls(tls) {
      server.setSecureContext({ cert: tls.cert, key: tls.key, ca: tls.ca ?? options.tls.ca });
    },
    organisations: () => options.organisations.map(({ clientSecret: _secret, ...rest }) => rest),
    async revokeClient(clientId, reason = 'revoked by an operator') {
      if (!options.clients.some((c) => c.clientId === clientId)) {
        throw new IdentityError('ERR_IDENTITY_UNKNOWN_CLIENT', `unknown client "${clientId}"`);
      }
      await store.addRevokedClient(clientId, now());
      const count = await store.revokeClientArtefacts(clientId);
      await syncClients();
      rebuild();
      await auditor.record({
        action: 'client.revoke',
        outcome: 'success',
        reason,
        actor: { clientId },
      });
      return count;
    },
    async close() {
      if (timer) clearInterval(timer);
      clearInterval(sweeper);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      // A store handed in by the caller is theirs to close.
      if (!options.store) await store.close();
    },
  };
}
