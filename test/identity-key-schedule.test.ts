import { generateKeyPairSync } from 'node:crypto';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import pg from 'pg';
import { startPostgres, type PostgresInstance } from './support/postgres.ts';
import { createBroker, createMemoryAuditSink, type Broker } from '../identity/index.ts';
import { openKeyManager } from '../identity/key-manager.ts';
import { openPostgresIdentityStore } from '../identity/postgres-store.ts';
import type { IdentityStore } from '../identity/store.ts';
import { createTestCa } from '../identity/testing/tls.ts';
import { createTlsFetch } from '../identity/tls-fetch.ts';
import { postForm } from '../identity/testing/clients.ts';
import { createIdentityAdminService } from '../identity/admin-service.ts';
import type {
  ListSigningKeysRequest,
  ListSigningKeysResponse,
} from '../gen/bulwark/identity/v1/identity.ts';
import type { ServerUnaryCall } from '@grpc/grpc-js';

// Two broker replicas sharing PostgreSQL, with the production schedule: rotation every 24 h,
// the next key published 2 minutes (two 60 s key checks) ahead. Checks are run by hand.
const DAY = 24 * 3600_000;
const LEAD = 120_000;
const TTL = 300_000;
const SECRET = 'svc-secret-0123456789abcdef0123456789';
const ISSUER = 'https://id.bulwark.test';

let pgi: PostgresInstance;
let store: IdentityStore;
let a: Broker;
let b: Broker;
let fetchFn: typeof fetch;
const audit = { a: createMemoryAuditSink(), b: createMemoryAuditSink() };
const clock = { now: 1_000_000 };

beforeAll(async () => {
  pgi = await startPostgres();
  store = await openPostgresIdentityStore({ connectionString: pgi.url, now: () => clock.now });
  const ca = await createTestCa();
  fetchFn = createTlsFetch({ ca: ca.cert });
  const start = async (sink: typeof audit.a) =>
    createBroker({
      issuer: ISSUER,
      tls: await ca.server('identity'),
      store,
      organisations: [],
      clients: [
        {
          clientId: 'svc',
          auth: 'client_secret_basic',
          clientSecret: SECRET,
          grantTypes: ['client_credentials'],
        },
      ],
      audit: sink,
      now: () => clock.now,
      keyCheckIntervalMs: 0,
      keyPublishLeadMs: LEAD,
    });
  a = await start(audit.a);
  b = await start(audit.b);
}, 60_000);
afterAll(async () => {
  await a?.close();
  await b?.close();
  await store?.close();
  await pgi?.stop();
});

async function signedKid(broker: Broker): Promise<{ token: string; kid: string | undefined }> {
  const { status, body } = await postForm(
    fetchFn,
    `${broker.url}/token`,
    { grant_type: 'client_credentials', resource: 'urn:bulwark:audit' },
    { authorization: `Basic ${Buffer.from(`svc:${SECRET}`).toString('base64')}` },
  );
  expect(status).toBe(200);
  const token = String(body.access_token);
  return { token, kid: decodeProtectedHeader(token).kid };
}

async function jwks(broker: Broker) {
  return (await (await fetchFn(`${broker.url}/jwks`)).json()) as { keys: { kid: string }[] };
}
const kids = async (broker: Broker) => (await jwks(broker)).keys.map((k) => k.kid);
const verifies = async (token: string, broker: Broker) =>
  jwtVerify(token, createLocalJWKSet((await jwks(broker)) as never), { issuer: ISSUER }).then(
    () => true,
    () => false,
  );

test('scheduled rotation: every replica publishes the next key before any signs, then both switch on time', async () => {
  const current = a.signingKeys()[0]!;
  const due = current.activatesAt + DAY;
  clock.now = due - LEAD;
  await a.checkKeyRotation();
  const next = a.signingKeys().find((k) => k.kid !== current.kid)!;
  expect(next).toMatchObject({ activatesAt: due, active: false, createdAt: due - LEAD });
  expect(await kids(a)).toEqual([current.kid, next.kid]);
  // An operator sees the next key, and when it will sign, through the admin API.
  const listed = await new Promise<ListSigningKeysResponse>((resolve, reject) =>
    createIdentityAdminService(a).implementation.listSigningKeys(
      { request: {} } as ServerUnaryCall<ListSigningKeysRequest, ListSigningKeysResponse>,
      (err, res) => (err ? reject(err) : resolve(res!)),
    ),
  );
  expect(listed.keys.map((k) => [k.kid, k.active, k.activatesAt?.getTime()])).toEqual([
    [current.kid, true, current.activatesAt],
    [next.kid, false, due],
  ]);
  // B has not checked yet: its JWKS lacks the next key, and that is harmless, because no
  // replica signs with it.
  expect(await kids(b)).toEqual([current.kid]);
  expect((await signedKid(a)).kid).toBe(current.kid);
  expect((await signedKid(b)).kid).toBe(current.kid);
  await b.checkKeyRotation();
  expect(await kids(b)).toEqual([current.kid, next.kid]);

  // Both keep signing with the old key until the activation time...
  clock.now = due - 1;
  await a.checkKeyRotation();
  await b.checkKeyRotation();
  expect((await signedKid(a)).kid).toBe(current.kid);
  const lastOld = await signedKid(b);
  expect(lastOld.kid).toBe(current.kid);
  // ...and from it both sign with the new one, with no write and before any key check.
  const rows = await store.listKeys();
  clock.now = due;
  expect((await signedKid(a)).kid).toBe(next.kid);
  expect((await signedKid(b)).kid).toBe(next.kid);
  expect(await kids(b)).toEqual([next.kid, current.kid]);
  expect(await store.listKeys()).toEqual(rows);

  // The token signed just before the switch verifies on either replica until it expires...
  clock.now = due + TTL;
  await a.checkKeyRotation();
  await b.checkKeyRotation();
  expect(await verifies(lastOld.token, a)).toBe(true);
  expect(await verifies(lastOld.token, b)).toBe(true);
  // ...after which its key leaves every JWKS (retained 60 s past the token lifetime).
  clock.now = due + TTL + 60_000;
  await a.checkKeyRotation();
  await b.checkKeyRotation();
  expect(await kids(a)).toEqual([next.kid]);
  expect(await kids(b)).toEqual([next.kid]);
  expect(await verifies(lastOld.token, b)).toBe(false);

  // Audit: A published the key (when, and from when it signs); each replica recorded its switch.
  const publish = audit.a.events.filter((e) => e.action === 'key.publish');
  expect(publish).toEqual([
    expect.objectContaining({
      reason: 'scheduled',
      target: {
        kid: next.kid,
        previousKid: current.kid,
        publishedAt: new Date(due - LEAD).toISOString(),
        activatesAt: new Date(due).toISOString(),
      },
    }),
  ]);
  expect(audit.b.events.filter((e) => e.action === 'key.publish')).toEqual([]);
  for (const sink of [audit.a, audit.b]) {
    expect(sink.events.filter((e) => e.action === 'key.rotate')).toEqual([
      expect.objectContaining({
        reason: 'scheduled',
        target: expect.objectContaining({ kid: next.kid, previousKid: current.kid }),
      }),
    ]);
    expect(JSON.stringify(sink.events)).not.toMatch(/"d"|"x"|"y"/);
  }
});

test('two replicas reaching the rotation time together add one next key, not two', async () => {
  const current = a.signingKeys()[0]!;
  const results: boolean[] = [];
  const rotateKeys = store.rotateKeys;
  // Both replicas read the keys before either writes: the worst case, forced.
  let arrived = 0;
  let bothRead = () => {};
  const barrier = new Promise<void>((resolve) => (bothRead = resolve));
  store.rotateKeys = async (...args) => {
    if (++arrived === 2) bothRead();
    await barrier;
    const done = await rotateKeys(...args);
    results.push(done);
    return done;
  };
  try {
    clock.now = current.activatesAt + DAY - LEAD;
    await Promise.all([a.checkKeyRotation(), b.checkKeyRotation()]);
  } finally {
    store.rotateKeys = rotateKeys;
  }
  // Both tried; the compare-and-set on the newest key let one through.
  expect(results.sort()).toEqual([false, true]);
  const pending = (await store.listKeys()).filter((k) => (k.activatesAt ?? 0) > clock.now);
  expect(pending).toHaveLength(1);
  expect(pending[0]!.activatesAt).toBe(current.activatesAt + DAY);
  for (const broker of [a, b]) {
    expect(broker.signingKeys().map((k) => k.kid)).toEqual([current.kid, pending[0]!.kid]);
  }
  const published = [...audit.a.events, ...audit.b.events].filter(
    (e) => e.action === 'key.publish' && e.target?.kid === pending[0]!.kid,
  );
  expect(published).toHaveLength(1);
});

test('an on-demand rotation still switches at once, dropping a key scheduled but not signing', async () => {
  const [current, scheduled] = a.signingKeys();
  expect(scheduled?.active).toBe(false);
  clock.now += 1000;
  const [fresh] = await a.rotateSigningKeys('suspected compromise');
  expect(fresh).toMatchObject({ active: true, activatesAt: clock.now });
  expect((await signedKid(a)).kid).toBe(fresh!.kid);
  expect(await kids(a)).toEqual([fresh!.kid, current!.kid]);
  // The other replica follows at its next check (the price of not waiting).
  await b.checkKeyRotation();
  expect((await signedKid(b)).kid).toBe(fresh!.kid);
  expect(await kids(b)).toEqual([fresh!.kid, current!.kid]);
  expect((await store.listKeys()).map((k) => k.kid)).not.toContain(scheduled!.kid);
  expect(
    audit.a.events.find((e) => e.action === 'key.rotate' && e.reason === 'suspected compromise'),
  ).toMatchObject({ target: { kid: fresh!.kid, previousKid: current!.kid } });
});

test('a PostgreSQL database written before scheduled rotation opens and keeps its key', async () => {
  const admin = new pg.Client({ connectionString: pgi.url });
  await admin.connect();
  await admin.query('CREATE DATABASE old_keys');
  await admin.end();
  const url = new URL(pgi.url);
  url.pathname = '/old_keys';
  const old = new pg.Client({ connectionString: url.href });
  await old.connect();
  const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    format: 'jwk',
  });
  try {
    // The table as the previous version created it.
    await old.query(`
      CREATE TABLE identity_signing_keys (
        kid TEXT PRIMARY KEY, jwk TEXT NOT NULL, created_at BIGINT NOT NULL,
        retired_at BIGINT, remove_after BIGINT);
      CREATE UNIQUE INDEX identity_signing_keys_one_active
        ON identity_signing_keys ((true)) WHERE retired_at IS NULL;`);
    await old.query(
      'INSERT INTO identity_signing_keys (kid, jwk, created_at) VALUES ($1, $2, 500)',
      ['old-kid', JSON.stringify({ ...jwk, kid: 'old-kid', alg: 'ES256', use: 'sig' })],
    );
    const opened = await Promise.all(
      [1, 2].map(() => openPostgresIdentityStore({ connectionString: url.href })),
    );
    try {
      const [first] = opened;
      expect(await first!.listKeys()).toEqual([
        expect.objectContaining({ kid: 'old-kid', createdAt: 500, activatesAt: undefined }),
      ]);
      const km = await openKeyManager({
        store: first!,
        now: () => 1000,
        rotationSeconds: 86_400,
        retainSeconds: 360,
        publishLeadMs: LEAD,
      });
      expect(km.active()).toMatchObject({ kid: 'old-kid', activatesAt: 500, active: true });
      const column = await old.query(
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'identity_signing_keys' AND column_name = 'activates_at'",
      );
      expect(column.rowCount).toBe(1);
    } finally {
      await Promise.all(opened.map((s) => s.close()));
    }
  } finally {
    await old.end();
  }
});
