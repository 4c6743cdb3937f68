import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createBroker, type Broker } from '../broker.ts';
import { createMemoryAuditSink } from '../audit-sink.ts';
import { startDemoIdp, type DemoIdp } from '../demo-idp/index.ts';
import type { BrokerClientConfig, BrokerOptions, OrganisationConfig } from '../options.ts';
import { DEVICE_CODE_GRANT, TOKEN_EXCHANGE_GRANT } from '../provider-config.ts';
import { createTlsFetch } from '../tls-fetch.ts';
import { createTestCa, type TestCa, type TestCertificate } from './tls.ts';

export const DEMO_PASSWORD = randomBytes(12).toString('base64url');
export const ACME_EXCHANGE_AUDIENCE = 'https://bulwark.acme.example';
export const WEB_REDIRECT = 'https://app.example.test/callback';
export const PARTNER_SAN = 'spiffe://bulwark.local/partner/acme/batch';

/** Finds a free loopback port (the broker's issuer must be known before the IdPs start). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface Harness {
  ca: TestCa;
  broker: Broker;
  acme: DemoIdp;
  globex: DemoIdp;
  audit: ReturnType<typeof createMemoryAuditSink>;
  clock: { now: number };
  /** Private key of `acme-gateway` (private_key_jwt). */
  gatewayKey: ReturnType<typeof generateKeyPairSync>['privateKey'];
  /** Private JWK the acme demo IdP signs with (to forge near-valid tokens in refusal tests). */
  acmeSigningJwk: Record<string, unknown>;
  partnerCert: TestCertificate;
  fetch: typeof fetch;
  /** A fetch that presents the partner client certificate. */
  mtlsFetch: typeof fetch;
  secrets: { acmeBackend: string };
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** Adds organisations (e.g. an unreachable or misbehaving one), given the test CA. */
  extraOrganisations?: (ca: TestCa) => Promise<OrganisationConfig[]>;
  brokerOptions?: Partial<BrokerOptions>;
  /** Redirect URI of the `web-console` client. Default {@link WEB_REDIRECT}. */
  webRedirect?: string;
}

/**
 * Starts a test CA, the `acme` and `globex` demo IdPs and a broker federating both, with the
 * clients the tests use. Everything listens on loopback, port 0 (the broker on a free port).
 */
export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const ca = await createTestCa();
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-identity-'));
  const port = await freePort();
  const issuer = `https://localhost:${port}`;
  const brokerSecret = {
    acme: randomBytes(24).toString('base64url'),
    globex: randomBytes(24).toString('base64url'),
  };
  const acmeBackend = randomBytes(24).toString('base64url');
  const acmeKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    format: 'jwk',
  });
  const acmeSigningJwk = {
    ...acmeKey,
    alg: 'ES256',
    use: 'sig',
    kid: createHash('sha256').update(String(acmeKey.x)).digest('base64url').slice(0, 16),
  };
  const acme = await startDemoIdp({
    org: 'acme',
    displayName: 'Acme Corp',
    tls: await ca.server(),
    password: DEMO_PASSWORD,
    jwks: { keys: [acmeSigningJwk] },
    clients: [
      {
        client_id: 'bulwark-broker',
        client_secret: brokerSecret.acme,
        redirect_uris: [`${issuer}/login/callback`],
      },
      {
        client_id: 'acme-backend',
        client_secret: acmeBackend,
        grant_types: ['client_credentials'],
      },
    ],
  });
  const globex = await startDemoIdp({
    org: 'globex',
    displayName: 'Globex',
    tls: await ca.server(),
    password: DEMO_PASSWORD,
    clients: [
      {
        client_id: 'bulwark-broker',
        client_secret: brokerSecret.globex,
        redirect_uris: [`${issuer}/login/callback`],
      },
    ],
  });
  const gateway = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const partnerCert = await ca.client(PARTNER_SAN);
  const audit = createMemoryAuditSink();
  const clock = { now: Date.now() };

  const organisations: OrganisationConfig[] = [
    {
      id: 'acme',
      displayName: 'Acme Corp',
      issuer: acme.issuer,
      clientId: 'bulwark-broker',
      clientSecret: brokerSecret.acme,
      emailDomains: ['acme.example'],
      roleMapping: [
        { claim: 'groups', value: 'ml-engineers', role: 'model-user' },
        { claim: 'groups', value: 'analysts', role: 'analyst' },
      ],
      defaultRoles: ['member'],
      trustedIssuers: [{ issuer: acme.issuer, audience: ACME_EXCHANGE_AUDIENCE }],
    },
    {
      id: 'globex',
      displayName: 'Globex',
      issuer: globex.issuer,
      clientId: 'bulwark-broker',
      clientSecret: brokerSecret.globex,
      emailDomains: ['globex.example'],
      roleMapping: [{ claim: 'groups', value: 'platform-admins', role: 'admin' }],
    },
    ...((await options.extraOrganisations?.(ca)) ?? []),
  ];
  const clients: BrokerClientConfig[] = [
    { clientId: 'bulwark-cli', auth: 'none', grantTypes: [DEVICE_CODE_GRANT, 'refresh_token'] },
    {
      clientId: 'web-console',
      auth: 'none',
      grantTypes: ['authorization_code', 'refresh_token'],
      redirectUris: [options.webRedirect ?? WEB_REDIRECT],
    },
    {
      clientId: 'acme-gateway',
      org: 'acme',
      roles: ['service'],
      auth: 'private_key_jwt',
      jwks: {
        keys: [{ ...gateway.publicKey.export({ format: 'jwk' }), alg: 'ES256', kid: 'gw-1' }],
      },
      grantTypes: ['client_credentials', TOKEN_EXCHANGE_GRANT],
      scopes: ['model:infer'],
    },
    {
      clientId: 'acme-batch',
      org: 'acme',
      roles: ['batch'],
      auth: 'tls_client_auth',
      tlsSanUri: PARTNER_SAN,
      grantTypes: ['client_credentials', TOKEN_EXCHANGE_GRANT],
      scopes: ['model:infer'],
    },
  ];
  const broker = await createBroker({
    host: 'localhost',
    port,
    issuer,
    tls: { ...(await ca.server('identity')), ca: [ca.cert] },
    databasePath: join(dir, 'identity.db'),
    organisations,
    clients,
    audit,
    now: () => clock.now,
    keyCheckIntervalMs: 0,
    upstream: { ca: [ca.cert], timeoutMs: 2000 },
    ...options.brokerOptions,
  });
  return {
    ca,
    broker,
    acme,
    globex,
    audit,
    clock,
    gatewayKey: gateway.privateKey,
    acmeSigningJwk,
    partnerCert,
    fetch: createTlsFetch({ ca: ca.cert }),
    mtlsFetch: createTlsFetch({ ca: ca.cert, cert: partnerCert.cert, key: partnerCert.key }),
    secrets: { acmeBackend },
    async close() {
      await broker.close();
      await acme.close();
      await globex.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
