import { mkdtempSync, rmSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createBroker, type Broker, type BrokerOptions } from '../identity/index.ts';
import { openSqliteIdentityStore } from '../identity/sqlite-store.ts';
import { newCookieKey } from '../identity/store.ts';
import { WEB_REDIRECT } from '../identity/testing/harness.ts';
import { showLoginPage, startSignIn } from '../identity/testing/login-cookies.ts';
import { createTestCa } from '../identity/testing/tls.ts';
import { createTlsFetch } from '../identity/tls-fetch.ts';
import { OFFLINE_ACME } from '../identity/testing/fixtures.ts';

let dir: string;
let fetchFn: typeof fetch;
let options: BrokerOptions;
const brokers: Broker[] = [];
const logLines: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bulwark-cookie-restart-'));
  const ca = await createTestCa();
  fetchFn = createTlsFetch({ ca: ca.cert });
  options = {
    issuer: 'https://id.bulwark.test',
    tls: await ca.server('identity'),
    databasePath: join(dir, 'identity.db'),
    organisations: [OFFLINE_ACME],
    clients: [
      {
        clientId: 'web-console',
        auth: 'none',
        grantTypes: ['authorization_code'],
        redirectUris: [WEB_REDIRECT],
      },
    ],
    keyCheckIntervalMs: 0,
    logger: pino(
      { level: 'trace' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          logLines.push(chunk.toString());
          done();
        },
      }),
    ),
  };
});
afterAll(async () => {
  for (const b of brokers) await b.close();
  rmSync(dir, { recursive: true, force: true });
});

async function start(overrides: Partial<BrokerOptions> = {}): Promise<Broker> {
  const broker = await createBroker({ ...options, ...overrides });
  brokers.push(broker);
  return broker;
}

async function stop(broker: Broker): Promise<void> {
  brokers.splice(brokers.indexOf(broker), 1);
  await broker.close();
}

test('a sign-in started before a restart continues after it; another key refuses it', async () => {
  const first = await start();
  const started = await startSignIn(fetchFn, first.url);
  expect((await showLoginPage(fetchFn, first.url, started.loginPath, started.cookie)).status).toBe(
    200,
  );
  await stop(first);

  // A copy of the database whose only difference is the cookie key: the interaction is there,
  // so nothing but the signature can make it refuse the cookie.
  const copy = join(dir, 'other-key.db');
  const db = new DatabaseSync(options.databasePath!);
  db.exec(`VACUUM INTO '${copy}'`);
  db.close();
  const other = new DatabaseSync(copy);
  other.prepare('UPDATE cookie_keys SET key = ?').run(newCookieKey());
  other.close();
  const stranger = await start({ databasePath: copy });
  const refused = await showLoginPage(fetchFn, stranger.url, started.loginPath, started.cookie);
  expect(refused.status).toBe(400);
  expect(refused.body).toContain('Sign-in expired');
  await stop(stranger);

  const restarted = await start();
  const page = await showLoginPage(fetchFn, restarted.url, started.loginPath, started.cookie);
  expect(page.status).toBe(200);
  expect(page.body).toContain(`action="${started.loginPath}"`);
  await stop(restarted);
});

test('cookieKeys given explicitly replace the stored keys', async () => {
  const own = newCookieKey();
  const explicit = await start({ cookieKeys: [own] });
  const started = await startSignIn(fetchFn, explicit.url);
  await stop(explicit);
  // The broker on the stored key does not accept what the explicit key signed.
  const stored = await start();
  const page = await showLoginPage(fetchFn, stored.url, started.loginPath, started.cookie);
  expect(page.status).toBe(400);
  await stop(stored);
});

test('the stored key never reaches the logs', async () => {
  const store = openSqliteIdentityStore(options.databasePath!);
  const keys = await store.cookieKeys();
  await store.close();
  expect(keys).toHaveLength(1);
  // The refusals above logged their failures.
  expect(logLines.join('')).toContain('login page failed');
  for (const key of keys) expect(logLines.join('')).not.toContain(key);
});
