import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AuditSink } from './audit-sink.ts';
import type { HttpTracing } from './http-tracing.ts';
import type { IdentityStore } from './store.ts';
import { IdentityError } from './errors.ts';
import type { RoleMappingRule } from './role-mapping.ts';
import { isJwtAlgorithm, JWT_ALGORITHMS } from '../mesh/tokens/index.ts';
import { MESH_SCOPES } from './resources.ts';

/** A partner IdP whose tokens the broker accepts for RFC 8693 token exchange. */
export interface TrustedIssuer {
  /** Exact `iss` of accepted subject tokens. */
  issuer: string;
  /** The `aud` a subject token must carry (tokens minted for any other audience are refused). */
  audience: string;
  /** JWKS URL. Default: the `jwks_uri` from the issuer's discovery document. */
  jwksUri?: string;
  /** Accepted signature algorithms. Default `['ES256', 'RS256', 'PS256', 'EdDSA']`; asymmetric only (ES*, RS*, PS*, EdDSA), never HMAC or none. */
  algorithms?: string[];
}

/** A partner organisation, mapped from `bulwark.yaml` by the launcher. */
export interface OrganisationConfig {
  /** Short id used in `sub`, the `org` claim and the `org` login parameter. */
  id: string;
  displayName: string;
  /** Issuer URL of the organisation's OpenID provider. */
  issuer: string;
  /** The broker's client at that provider. */
  clientId: string;
  clientSecret: string;
  /** Email domains of this organisation's people (home-realm discovery; cross-org refusal). */
  emailDomains: string[];
  /** Claim-to-role rules applied to ID token and subject token claims. */
  roleMapping: RoleMappingRule[];
  /** Roles every member gets. Default none. */
  defaultRoles?: string[];
  /** Scopes requested upstream. Default `openid email profile groups`. */
  upstreamScope?: string;
  /** Token exchange trust; no entry means token exchange is refused for this organisation. */
  trustedIssuers?: TrustedIssuer[];
}

/** A client of the broker: the CLI (public), web apps, or a partner's back-end service. */
export interface BrokerClientConfig {
  clientId: string;
  /** The organisation a service client acts for (its tokens carry this `org`). */
  org?: string;
  /** Roles of a service client's own tokens. */
  roles?: string[];
  /**
   * `none` (public: CLI, PKCE), `private_key_jwt` (with `jwks`), `tls_client_auth` (with
   * `tlsSanUri` or `tlsSubjectDn`; tokens are certificate-bound) or `client_secret_basic`.
   */
  auth: 'none' | 'private_key_jwt' | 'tls_client_auth' | 'client_secret_basic';
  clientSecret?: string;
  /** Public keys for `private_key_jwt`. */
  jwks?: { keys: Record<string, unknown>[] };
  tlsSanUri?: string;
  tlsSubjectDn?: string;
  grantTypes: string[];
  redirectUris?: string[];
  /** Scopes the client may request. Default: every mesh scope. */
  scopes?: string[];
}

/** Options of {@link createBroker}; every default is listed here. */
export interface BrokerOptions {
  /** Public issuer URL. Default `https://<host>:<bound port>`. */
  issuer?: string;
  /** Listen address; default `127.0.0.1`, port 0 (any free port, read back from `broker.url`). */
  host?: string;
  port?: number;
  /** HTTPS certificate and key (PEM) from the mesh CA; `ca` lists CAs trusted for client certificates. */
  tls: { cert: string; key: string; ca?: string[] };
  /** SQLite database file for sessions, grants, tokens, accounts and signing keys. */
  databasePath?: string;
  /**
   * Storage shared by broker replicas (e.g. {@link openPostgresIdentityStore}); replaces
   * `databasePath`. The caller closes it.
   */
  store?: IdentityStore;
  organisations: OrganisationConfig[];
  clients: BrokerClientConfig[];
  /**
   * Audit record destination. Tokens with a privileged scope (`model:admin`, `policy:admin`,
   * `audit:read`) are issued only once the sink acknowledges their record (`503
   * temporarily_unavailable` otherwise); everything else is recorded without waiting (see
   * `createBufferedAuditSink`). Default: records are only logged.
   */
  audit?: AuditSink;
  logger?: Logger;
  /**
   * HTTP server spans per request (`<METHOD> <route>`), continuing W3C `traceparent`.
   * Default: not traced.
   */
  tracing?: HttpTracing;
  /** Prometheus registry for `bulwark_identity_events_total`. Default: no metrics. */
  metrics?: Registry;
  /** Clock in ms. Default `Date.now`. Drives key rotation and token exchange checks. */
  now?: () => number;
  /** Access token lifetime. Default 300 s. */
  accessTokenTtlSeconds?: number;
  /** Refresh token lifetime. Default 8 h. */
  refreshTokenTtlSeconds?: number;
  /** Signing key rotation period. Default 24 h. */
  keyRotationSeconds?: number;
  /**
   * How often each replica reloads the signing keys and checks the rotation schedule.
   * Default 60 s; 0 disables the timer.
   */
  keyCheckIntervalMs?: number;
  /**
   * Scheduled rotation publishes the next signing key this long before it starts signing, so
   * every replica (each reloads keys every `keyCheckIntervalMs`) serves it in its JWKS before
   * any token is signed with it. Must be at least twice `keyCheckIntervalMs`. Default: the
   * larger of twice `keyCheckIntervalMs` and 2 minutes. On-demand rotation
   * (`Broker.rotateSigningKeys`) does not wait: it switches at once.
   */
  keyPublishLeadMs?: number;
  /** Upstream IdP access: extra CAs and timeout per request. Defaults: none, 5000 ms. */
  upstream?: { ca?: string[]; timeoutMs?: number };
  /**
   * Keys that sign the broker's cookies (login interaction, session, device flow), newest
   * first: the first signs, every one verifies. Default: the keys kept in the store
   * (`IdentityStore.cookieKeys`, created on first start), so replicas sharing a store accept
   * each other's cookies and sign-ins survive a restart. Secrets: never logged.
   */
  cookieKeys?: string[];
}

export type ResolvedBrokerOptions = Required<
  Omit<
    BrokerOptions,
    'issuer' | 'audit' | 'logger' | 'upstream' | 'store' | 'metrics' | 'tracing' | 'cookieKeys'
  >
> &
  Pick<
    BrokerOptions,
    'issuer' | 'audit' | 'logger' | 'store' | 'metrics' | 'tracing' | 'cookieKeys'
  > & {
    upstream: { ca: string[]; timeoutMs: number };
  };

const ORG_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;

function fail(option: string, why: string): never {
  throw new IdentityError('ERR_IDENTITY_INVALID_OPTION', `${option} ${why}`);
}

/** Applies defaults in one place and rejects bad options with a message naming the option. */
export function resolveBrokerOptions(options: BrokerOptions): ResolvedBrokerOptions {
  if (!options.tls?.cert || !options.tls?.key) fail('tls', 'must have cert and key (PEM)');
  if (!options.databasePath && !options.store) fail('databasePath', 'is required (or a store)');
  const seenOrgs = new Set<string>();
  const domainOwner = new Map<string, string>();
  options.organisations.forEach((org, i) => {
    const at = `organisations[${i}]`;
    if (!ORG_ID.test(org.id)) fail(`${at}.id`, 'must be lower-case letters, digits and dashes');
    if (seenOrgs.has(org.id)) fail(`${at}.id`, `"${org.id}" is listed twice`);
    seenOrgs.add(org.id);
    try {
      new URL(org.issuer);
    } catch {
      fail(`${at}.issuer`, 'must be a URL');
    }
    if (!org.clientId) fail(`${at}.clientId`, 'is required');
    for (const domain of org.emailDomains) {
      const d = domain.toLowerCase();
      const owner = domainOwner.get(d);
      if (owner) fail(`${at}.emailDomains`, `"${d}" already belongs to ${owner}`);
      domainOwner.set(d, org.id);
    }
    for (const t of org.trustedIssuers ?? []) {
      if (!t.audience) fail(`${at}.trustedIssuers.audience`, 'is required');
      for (const alg of t.algorithms ?? []) {
        if (!isJwtAlgorithm(alg)) {
          fail(
            `${at}.trustedIssuers.algorithms`,
            `must not allow ${alg} (asymmetric only: ${JWT_ALGORITHMS.join(', ')})`,
          );
        }
      }
    }
  });
  const seenClients = new Set<string>();
  options.clients.forEach((c, i) => {
    const at = `clients[${i}]`;
    if (!c.clientId) fail(`${at}.clientId`, 'is required');
    if (seenClients.has(c.clientId)) fail(`${at}.clientId`, `"${c.clientId}" is listed twice`);
    seenClients.add(c.clientId);
    if (c.org && !seenOrgs.has(c.org)) fail(`${at}.org`, `names unknown organisation "${c.org}"`);
    if (c.auth === 'private_key_jwt' && !c.jwks)
      fail(`${at}.jwks`, 'is required for private_key_jwt');
    if (c.auth === 'tls_client_auth' && !c.tlsSanUri && !c.tlsSubjectDn) {
      fail(`${at}.tlsSanUri`, 'or tlsSubjectDn is required for tls_client_auth');
    }
    if (c.auth === 'client_secret_basic' && !c.clientSecret)
      fail(`${at}.clientSecret`, 'is required');
    for (const s of c.scopes ?? [])
      if (!MESH_SCOPES.includes(s)) fail(`${at}.scopes`, `has unknown scope "${s}"`);
  });
  if (options.cookieKeys && !(options.cookieKeys.length && options.cookieKeys.every(Boolean))) {
    fail('cookieKeys', 'must list at least one non-empty key (or be left out to use the store)');
  }
  const ttl = options.accessTokenTtlSeconds ?? 300;
  if (!(ttl > 0 && ttl <= 3600)) fail('accessTokenTtlSeconds', 'must be between 1 and 3600');
  const checkMs = options.keyCheckIntervalMs ?? 60_000;
  if (!(Number.isFinite(checkMs) && checkMs >= 0)) {
    fail('keyCheckIntervalMs', 'must be a number of milliseconds, 0 or more');
  }
  const leadMs = options.keyPublishLeadMs ?? Math.max(2 * checkMs, 120_000);
  if (!(Number.isFinite(leadMs) && leadMs >= 2 * checkMs)) {
    fail(
      'keyPublishLeadMs',
      `must be at least twice keyCheckIntervalMs (${2 * checkMs} ms): a replica may take that long to publish the next key`,
    );
  }
  return {
    host: '127.0.0.1',
    port: 0,
    now: Date.now,
    refreshTokenTtlSeconds: 8 * 3600,
    keyRotationSeconds: 24 * 3600,
    ...options,
    databasePath: options.databasePath ?? '',
    accessTokenTtlSeconds: ttl,
    keyCheckIntervalMs: checkMs,
    keyPublishLeadMs: leadMs,
    upstream: { ca: options.upstream?.ca ?? [], timeoutMs: options.upstream?.timeoutMs ?? 5000 },
  };
}
