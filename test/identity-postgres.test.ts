import { Writable } from 'node:stream';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import pg from 'pg';
import { pino } from 'pino';
import { startPostgres, type PostgresInstance } from './support/postgres.ts';
import { createBroker, type Broker, type BrokerOptions } from '../identity/index.ts';
import { openPostgresIdentityStore } from '../identity/postgres-store.ts';
import { newCookieKey, type IdentityStore } from '../identity/store.ts';
import { createTestCa, type TestCa } from '../identity/testing/tls.ts';
import { createTlsFetch } from '../identity/tls-fetch.ts';
import { postForm } from '../identity/testing/clients.ts';
import { WEB_REDIRECT } from '../identity/testing/harness.ts';
import {
  cookieHeader,
  showLoginPage,
  signedCookie,
  startSignIn,
} from '../identity/testing/login-cookies.ts';
import { OFFLINE_ACME } from '../identity/testing/fixtures.ts';

let pgi: PostgresInstance;
let store: IdentityStore;
let ca: TestCa;
let a: Broker;
let b: Broker;
/** A third replica on the same store, configured with a cookie key of its own. */
let c: Broker;
const otherKey = newCookieKey();
let fetchFn: typeof fetch;
/** Everything the replicas log, unredacted (the key must not reach the logger at all). */
const logLines: string[] = [];
const logger = pino(
  { level: 'trace' },
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(chunk.toString());
      done();
    },
  }),
);
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
    organisations: [OFFLINE_ACME],
    clients: [
      {
        clientId: 'svc',
        org: 'acme',
        roles: ['batch'],
        auth: 'client_secret_basic',
        clientSecret: SECRET,
        grantTypes: ['client_credentials'],
      },
      {
        clientId: 'svc-2',
        org: 'acme',
        roles: ['batch'],
        auth: 'client_secret_basic',
        clientSecret: SECRET,
        grantTypes: ['client_credentials'],
      },
      {
        clientId: 'web-console',
        auth: 'none',
        grantTypes: ['authorization_code'],
        redirectUris: [WEB_REDIRECT],
      },
    ],
    keyCheckIntervalMs: 0,
    logger,
  });
  // Two replicas behind one issuer URL, sharing one database (and so its cookie keys).
  a = await createBroker(await options());
  b = await createBroker(await options());
  c = await createBroker({ ...(await options()), cookieKeys: [otherKey] });
}, 60_000);
afterAll(async () => {
  await a?.close();
  await b?.close();
  await c?.close();
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

test('an on-demand rotation signs at once on its replica and reaches the other at its next check', async () => {
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

test("a replica's later re-sync never brings back a client another replica revoked", async () => {
  // b started before a revoked svc, so its own view of revocations is older; its revocation
  // of svc-2 re-syncs the clients, and svc must stay out.
  await b.revokeClient('svc-2');
  for (const broker of [a, b]) {
    const { status, body } = await token(broker);
    expect({ status, error: body.error }).toEqual({ status: 401, error: 'invalid_client' });
  }
  expect((await store.revokedClients()).sort()).toEqual(['svc', 'svc-2']);
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

describe('cookie keys in the store', () => {
  test('a sign-in started on one replica continues on the other', async () => {
    const started = await startSignIn(fetchFn, a.url);
    expect(started.loginPath).toMatch(/^\/login\/[\w-]+$/);
    const page = await showLoginPage(fetchFn, b.url, started.loginPath, started.cookie);
    expect(page.status).toBe(200);
    expect(page.body).toContain('Sign in to Bulwark');
    // The picker for this very interaction, not a new one.
    expect(page.body).toContain(`action="${started.loginPath}"`);
  });

  test('refused: a replica with another cookie key does not accept the cookie', async () => {
    // Same store, so the interaction exists there: only the signature tells them apart.
    const started = await startSignIn(fetchFn, a.url);
    const page = await showLoginPage(fetchFn, c.url, started.loginPath, started.cookie);
    expect(page.status).toBe(400);
    expect(page.body).toContain('Sign-in expired');
    expect(page.body).not.toContain(`action="${started.loginPath}"`);
  });

  test('refused: the interaction cookie unsigned, or signed with a key not in the store', async () => {
    const started = await startSignIn(fetchFn, a.url);
    const unsigned = new Map([...started.cookies].filter(([name]) => !name.endsWith('.sig')));
    expect(unsigned.size).toBeLessThan(started.cookies.size);
    const bare = await showLoginPage(fetchFn, b.url, started.loginPath, cookieHeader(unsigned));
    expect(bare.status).toBe(400);
    // The uid is in the URL, so anyone can build the cookie; what they lack is the key.
    const uid = started.loginPath.split('/').pop()!;
    const forged = cookieHeader(signedCookie('_bulwark_interaction', uid, otherKey));
    // Control: the replica that holds that key accepts the forgery, so it is well made...
    expect((await showLoginPage(fetchFn, c.url, started.loginPath, forged)).status).toBe(200);
    // ...and the replicas using the stored key refuse it.
    const page = await showLoginPage(fetchFn, b.url, started.loginPath, forged);
    expect(page.status).toBe(400);
    expect(page.body).toContain('Sign-in expired');
  });

  test('the stored key is never logged', async () => {
    const [key] = await store.cookieKeys();
    expect(key).toMatch(/^[\w-]{43}$/);
    // The sign-ins and refusals above logged audit records and failures.
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('')).not.toContain(key);
  });

  test('stores opened at once on an empty database agree on one key', async () => {
    const admin = new pg.Client({ connectionString: pgi.url });
    await admin.connect();
    await admin.query('CREATE DATABASE cookie_race');
    await admin.end();
    const url = new URL(pgi.url);
    url.pathname = '/cookie_race';
    const stores = await Promise.all(
      Array.from({ length: 4 }, () => openPostgresIdentityStore({ connectionString: url.href })),
    );
    const check = new pg.Pool({ connectionString: url.href, max: 1 });
    try {
      const keys = await Promise.all(stores.map((s) => s.cookieKeys()));
      expect(keys[0]).toHaveLength(1);
      for (const k of keys) expect(k).toEqual(keys[0]);
      const { rows } = await check.query<{ key: string }>('SELECT key FROM identity_cookie_keys');
      expect(rows.map((r) => r.key)).toEqual(keys[0]);
      // A rotation inserts a newer key: it comes first (signs), the older one still verifies.
      const fresh = newCookieKey();
      await check.query('INSERT INTO identity_cookie_keys (key, created_at) VALUES ($1, 0)', [
        fresh,
      ]);
      expect(await stores[1]!.cookieKeys()).toEqual([fresh, ...keys[0]!]);
    } finally {
      await check.end();
      await Promise.all(stores.map((s) => s.close()));
    }
  });
});
