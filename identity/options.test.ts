import { resolveBrokerOptions, type BrokerOptions, type OrganisationConfig } from './options.ts';

const org: OrganisationConfig = {
  id: 'acme',
  displayName: 'Acme',
  issuer: 'https://idp.acme.example',
  clientId: 'bulwark',
  clientSecret: 's',
  emailDomains: ['acme.example'],
  roleMapping: [],
};
const base: BrokerOptions = {
  tls: { cert: 'c', key: 'k' },
  databasePath: ':memory:',
  organisations: [org],
  clients: [],
};
const resolve = (o: Partial<BrokerOptions>) => resolveBrokerOptions({ ...base, ...o });

test('defaults are documented values', () => {
  const r = resolve({});
  expect(r).toMatchObject({
    host: '127.0.0.1',
    port: 0,
    accessTokenTtlSeconds: 300,
    refreshTokenTtlSeconds: 28_800,
    keyRotationSeconds: 86_400,
    upstream: { ca: [], timeoutMs: 5000 },
  });
  // Scheduled rotation publishes the next key two checks (at least 2 minutes) ahead.
  expect(r).toMatchObject({ keyCheckIntervalMs: 60_000, keyPublishLeadMs: 120_000 });
  expect(resolve({ keyCheckIntervalMs: 300_000 }).keyPublishLeadMs).toBe(600_000);
  expect(resolve({ keyCheckIntervalMs: 0 }).keyPublishLeadMs).toBe(120_000);
  expect(resolve({ keyPublishLeadMs: 125_000 }).keyPublishLeadMs).toBe(125_000);
  // No per-process random default: the broker reads the keys kept in its store.
  expect(r.cookieKeys).toBeUndefined();
  expect(resolve({ cookieKeys: ['k2', 'k1'] }).cookieKeys).toEqual(['k2', 'k1']);
});

test.each<[string, Partial<BrokerOptions>]>([
  ['tls', { tls: { cert: '', key: 'k' } }],
  ['databasePath', { databasePath: '' }],
  ['organisations[0].id', { organisations: [{ ...org, id: 'Acme Corp' }] }],
  ['organisations[1].id', { organisations: [org, org] }],
  ['organisations[0].issuer', { organisations: [{ ...org, issuer: 'not a url' }] }],
  [
    'organisations[1].emailDomains',
    { organisations: [org, { ...org, id: 'other', emailDomains: ['ACME.example'] }] },
  ],
  [
    'organisations[0].trustedIssuers.algorithms',
    {
      organisations: [
        { ...org, trustedIssuers: [{ issuer: 'https://x', audience: 'a', algorithms: ['HS256'] }] },
      ],
    },
  ],
  // Only asymmetric JWS algorithms: not `none`, and not one the verifier does not know.
  ...['none', 'ES256K', 'es256'].map((alg): [string, Partial<BrokerOptions>] => [
    'organisations[0].trustedIssuers.algorithms',
    {
      organisations: [
        { ...org, trustedIssuers: [{ issuer: 'https://x', audience: 'a', algorithms: [alg] }] },
      ],
    },
  ]),
  [
    'organisations[0].trustedIssuers.audience',
    { organisations: [{ ...org, trustedIssuers: [{ issuer: 'https://x', audience: '' }] }] },
  ],
  ['clients[0].org', { clients: [{ clientId: 'c', org: 'nobody', auth: 'none', grantTypes: [] }] }],
  ['clients[0].jwks', { clients: [{ clientId: 'c', auth: 'private_key_jwt', grantTypes: [] }] }],
  [
    'clients[0].tlsSanUri',
    { clients: [{ clientId: 'c', auth: 'tls_client_auth', grantTypes: [] }] },
  ],
  [
    'clients[0].scopes',
    { clients: [{ clientId: 'c', auth: 'none', grantTypes: [], scopes: ['everything'] }] },
  ],
  ['accessTokenTtlSeconds', { accessTokenTtlSeconds: 0 }],
  ['keyPublishLeadMs', { keyPublishLeadMs: 119_999 }],
  ['keyPublishLeadMs', { keyCheckIntervalMs: 1000, keyPublishLeadMs: -1 }],
  ['keyPublishLeadMs', { keyCheckIntervalMs: 1000, keyPublishLeadMs: Number.NaN }],
  ['keyCheckIntervalMs', { keyCheckIntervalMs: -1 }],
  ['cookieKeys', { cookieKeys: [] }],
  ['cookieKeys', { cookieKeys: ['k', ''] }],
])('a bad %s is refused with the option named', (option, bad) => {
  expect(() => resolve(bad)).toThrow(option);
});
