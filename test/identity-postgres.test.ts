import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { startPostgres, type PostgresInstance } from './support/postgres.ts';
import { createBroker, type Broker, type BrokerOptions } from '../identity/index.ts';
import { openPostgresIdentityStore } from '../identity/postgres-store.ts';
import type { IdentityStore } from '../identity/store.ts';
import { createTestCa, type TestCa } from '../identity/testing/tls.ts';
import { createTlsFetch } from '../identity/tls-fetch.ts';
import { postForm } from '../identity/testing/clients.ts';

let pgi: PostgresInstance;
let store: IdentityStore;
let ca: TestCa;
let a: Broker;
let b: Broker;
let fetchFn: typeof fetch;
const clock = { now: 1_000_000 };
const SECRET = 'svc-secret-0123456789abcdef0123456789';

beforeAll(async () => {
  pgi = await startPostgres();
  store = await openPostgresIdentityStore({ connectionString: pgi.url, now: () => clock.now });
  ca = await createTestCa();
  fetchFn = createTlsFetch({ ca: ca.cert });
  const options = async (): Promise<BrokerOptions> => ({
    issuer: 'https://id.bulwark.test',
    tls: await ca.server('identity'),
    store,
    organisations: [
      {
        id: 'acme',
        displayName: 'Acme',
        issuer: 'https://idp.acme.example',
        clientId: 'bulwark',
        clientSecret: 'unused',
        emailDomains: ['acme.example'],
        roleMapping: [],
      },
    ],
    clients: [
      {
        clientId: 'svc',
        org: 'acme',
        roles: ['batch'],
        auth: 'client_secret_basic',
        clientSecret: SECRET,
        grantTypes: ['client_credentials'],
      },
    ],
    keyCheckIntervalMs: 0,
  });
  // Two replicas behind one issuer URL, sharing one database.
  a = await createBroker(await options());
  b = await createBroker(await options());
}, 60_000);
afterAll(async () => {
  await a?.close();
  await b?.close();
  await store?.close();
  await pgi?.stop();
});

async function token(broker: Broker) {
  return postForm(
    fetchFn,
    `${broker.url}/token`,
    { grant_type: 'client_credentials', resource: 'urn:bulwark:audit' },
    { authorization: `Basic ${Buffer.from(`svc:${SECRET}`).toString('base64')}` },
  );
}

async function jwks(broker: Broker) {
  return createLocalJWKSet(
    (await (await fetchFn(`${broker.url}/jwks`)).json()) as { keys: never[] },
  );
}

test('replicas share one signing key: a token from one verifies with the JWKS of the other', async () => {
  expect(b.signingKeys().map((k) => k.kid)).toEqual(a.signingKeys().map((k) => k.kid));
  const { status, body } = await token(a);
  expect(status).toBe(200);
  const { payload } = await jwtVerify(String(body.access_token), await jwks(b), {
    issuer: 'https://id.bulwark.test',
    audience: 'urn:bulwark:audit',
  });
  expect(payload).toMatchObject({ sub: 'acme/svc', org: 'acme', roles: ['batch'] });
});

test('a rotation on one replica reaches the other at its next check', async () => {
  const before = a.signingKeys()[0]!.kid;
  const [active] = await a.rotateSigningKeys('test');
  await b.checkKeyRotation();
  expect(b.signingKeys().map((k) => k.kid)).toEqual([active!.kid, before]);
  const { body } = await token(b);
  expect(decodeProtectedHeader(String(body.access_token)).kid).toBe(active!.kid);
});

test('a client revoked on one replica is refused by the other', async () => {
  await a.revokeClient('svc');
  const { status, body } = await token(b);
  expect(status).toBe(401);
  expect(body.error).toBe('invalid_client');
});

test('PostgreSQL adapter: lookups, expiry, consume, grant revocation', async () => {
  const device = new store.Adapter('DeviceCode');
  await device.upsert('d1', { userCode: 'ABCD-EFGH', uid: 'u1', grantId: 'g1' }, 60);
  expect(await device.findByUserCode('ABCD-EFGH')).toMatchObject({ uid: 'u1' });
  expect(await device.findByUid('u1')).toMatchObject({ grantId: 'g1' });
  await device.consume('d1');
  expect((await device.find('d1'))?.consumed).toBe(1000);
  await new store.Adapter('RefreshToken').upsert('r1', { grantId: 'g1' }, 60);
  await device.revokeByGrantId('g1');
  expect(await new store.Adapter('RefreshToken').find('r1')).toBeUndefined();
  await device.upsert('d2', { userCode: 'X' }, 60);
  clock.now += 61_000;
  expect(await device.find('d2')).toBeUndefined();
  await store.sweep();
  clock.now -= 61_000;
  expect(await device.find('d2')).toBeUndefined();
});
