import { mkdtempSync, rmSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteIdentityStore } from './sqlite-store.ts';
import { newCookieKey } from './store.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bulwark-cookie-keys-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('the first call creates one 32-byte key; every later call and reopen returns it', async () => {
  const file = join(dir, 'identity.db');
  const store = openSqliteIdentityStore(file);
  const keys = await store.cookieKeys();
  expect(keys).toHaveLength(1);
  expect(Buffer.from(keys[0]!, 'base64url')).toHaveLength(32);
  expect(await store.cookieKeys()).toEqual(keys);
  await store.close();
  const reopened = openSqliteIdentityStore(file);
  expect(await reopened.cookieKeys()).toEqual(keys);
  await reopened.close();
});

test('two stores on one file share the key the first one created', async () => {
  const file = join(dir, 'identity.db');
  const [one, two] = [openSqliteIdentityStore(file), openSqliteIdentityStore(file)];
  const [a, b] = await Promise.all([one.cookieKeys(), two.cookieKeys()]);
  expect(a).toHaveLength(1);
  expect(b).toEqual(a);
  await one.close();
  await two.close();
});

test('a key added later comes first (it signs), the older one still follows (it verifies)', async () => {
  const file = join(dir, 'identity.db');
  const store = openSqliteIdentityStore(file);
  const [old] = await store.cookieKeys();
  // What a rotation does: insert a newer key, keep the old one.
  const db = new DatabaseSync(file);
  const fresh = newCookieKey();
  db.prepare('INSERT INTO cookie_keys (key, created_at) VALUES (?, ?)').run(fresh, 0);
  db.close();
  expect(await store.cookieKeys()).toEqual([fresh, old]);
  await store.close();
});

test('keys are random: two databases get different ones', async () => {
  const one = openSqliteIdentityStore(join(dir, 'one.db'));
  const two = openSqliteIdentityStore(join(dir, 'two.db'));
  expect(await one.cookieKeys()).not.toEqual(await two.cookieKeys());
  await one.close();
  await two.close();
});
