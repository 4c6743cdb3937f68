import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { openKeyManager } from './key-manager.ts';
import { openSqliteIdentityStore } from './sqlite-store.ts';
import type { IdentityStore } from './store.ts';

const HOUR = 3_600_000;
const LEAD = 120_000;

function manager(store: IdentityStore, clock: { now: number }) {
  return openKeyManager({
    store,
    now: () => clock.now,
    rotationSeconds: 3600,
    retainSeconds: 360,
    publishLeadMs: LEAD,
  });
}

async function keys() {
  const clock = { now: 0 };
  const store = openSqliteIdentityStore(':memory:');
  const km = await manager(store, clock);
  return { km, clock, store };
}

const firstKid = (jwks: { keys: Record<string, unknown>[] }) => jwks.keys[0]?.kid;

test('starts with one active ES256 key whose private part is only in the private JWKS', async () => {
  const { km, store } = await keys();
  expect(km.published()).toHaveLength(1);
  expect(km.active()).toMatchObject({ alg: 'ES256', active: true, activatesAt: 0 });
  const [jwk] = km.privateJwks().keys;
  expect(jwk).toMatchObject({
    kty: 'EC',
    crv: 'P-256',
    alg: 'ES256',
    use: 'sig',
    kid: km.active().kid,
  });
  expect(JSON.stringify(km.published())).not.toContain('"d"');
  await store.close();
});

test('on-demand rotation switches at once; the old key stays published for the retention time', async () => {
  const { km, clock, store } = await keys();
  const first = km.active().kid;
  clock.now = 1000;
  km.privateJwks();
  const { active, retired } = await km.rotate();
  expect(active.activatesAt).toBe(1000);
  expect(km.active().kid).toBe(active.kid);
  expect(retired).toMatchObject({ kid: first, retiredAt: 1000, removeAfter: 1000 + 360_000 });
  expect(km.published().map((k) => k.kid)).toEqual([active.kid, first]);
  // The provider still holds the old set: a change is reported once, until it is rebuilt.
  expect((await km.tick()).changed).toBe(true);
  km.privateJwks();
  clock.now = 1000 + 359_999;
  expect(await km.tick()).toMatchObject({ removed: [], changed: false });
  clock.now = 1000 + 360_000;
  expect(km.stale()).toBe(true);
  expect(await km.tick()).toMatchObject({ removed: [first], changed: true });
  expect(km.privateJwks().keys.map((k) => k.kid)).toEqual([active.kid]);
  await store.close();
});

test('scheduled rotation publishes the next key ahead, then it signs at its time without a write', async () => {
  const { km, clock, store } = await keys();
  const first = km.active().kid;
  km.privateJwks();
  clock.now = HOUR - LEAD - 1;
  expect(await km.tick()).toMatchObject({ scheduled: undefined, changed: false });
  clock.now = HOUR - LEAD;
  const { scheduled, activated, changed } = await km.tick();
  expect(activated).toBeUndefined();
  expect(scheduled?.retired).toMatchObject({ kid: first, retiredAt: HOUR, active: true });
  expect(scheduled?.active).toMatchObject({ createdAt: HOUR - LEAD, activatesAt: HOUR });
  expect(scheduled?.active.active).toBe(false);
  const next = scheduled!.active.kid;
  // Published (the provider must be rebuilt to serve it) but not signing.
  expect(changed).toBe(true);
  const jwks = km.privateJwks();
  expect(jwks.keys.map((k) => k.kid)).toEqual([first, next]);
  expect(km.active().kid).toBe(first);

  let writes = 0;
  const rotateKeys = store.rotateKeys;
  store.rotateKeys = (...args) => {
    writes++;
    return rotateKeys(...args);
  };
  clock.now = HOUR - 1;
  expect(km.stale()).toBe(false);
  expect(await km.tick()).toMatchObject({ scheduled: undefined, activated: undefined });
  clock.now = HOUR;
  // The switch is by time alone: no store call, and the cached JWKS is stale at once.
  expect(km.active().kid).toBe(next);
  expect(km.stale()).toBe(true);
  expect(firstKid(km.privateJwks())).toBe(next);
  expect(km.published().map((k) => [k.kid, k.active])).toEqual([
    [next, true],
    [first, false],
  ]);
  const after = await km.tick();
  expect(after.activated).toMatchObject({
    active: { kid: next, activatesAt: HOUR },
    retired: { kid: first, retiredAt: HOUR, removeAfter: HOUR + 360_000 },
  });
  expect(after.scheduled).toBeUndefined();
  expect((await km.tick()).activated).toBeUndefined();
  expect(writes).toBe(0);
  // The old key leaves the JWKS once every token it signed has expired.
  clock.now = HOUR + 360_000;
  expect((await km.tick()).removed).toEqual([first]);
  // And the schedule goes on from the new key's activation.
  clock.now = 2 * HOUR - LEAD;
  expect((await km.tick()).scheduled?.active.activatesAt).toBe(2 * HOUR);
  expect(writes).toBe(1);
  await store.close();
});

test('a schedule checked late still gives the whole lead time before the next key signs', async () => {
  const { km, clock, store } = await keys();
  const first = km.active().kid;
  clock.now = 5 * HOUR;
  const { scheduled } = await km.tick();
  expect(scheduled?.active.activatesAt).toBe(5 * HOUR + LEAD);
  expect(km.active().kid).toBe(first);
  clock.now = 5 * HOUR + LEAD;
  expect(km.active().kid).toBe(scheduled?.active.kid);
  await store.close();
});

test('replicas on one store agree on the signing key by time, and schedule one next key, not two', async () => {
  const clock = { now: 0 };
  const store = openSqliteIdentityStore(':memory:');
  const a = await manager(store, clock);
  const b = await manager(store, clock);
  expect(b.active().kid).toBe(a.active().kid);
  const first = a.active().kid;
  clock.now = HOUR - LEAD;
  const [ta, tb] = [await a.tick(), await b.tick()];
  const next = ta.scheduled!.active.kid;
  expect(tb.scheduled).toBeUndefined();
  expect(b.published().map((k) => k.kid)).toEqual([first, next]);
  expect((await store.listKeys()).map((k) => k.kid)).toEqual([next, first]);
  // Refused: a rotation whose replica read the newest key before the other scheduled.
  const stale = { kid: 'late', jwk: '{}', createdAt: clock.now, activatesAt: HOUR };
  expect(await store.rotateKeys(stale, first, { at: HOUR, removeAfter: HOUR + 1 })).toBe(false);
  expect(await store.listKeys()).toHaveLength(2);
  clock.now = HOUR;
  expect([a.active().kid, b.active().kid]).toEqual([next, next]);
  await store.close();
});

test('an on-demand rotation while a key is scheduled switches at once and drops the scheduled key', async () => {
  const { km, clock, store } = await keys();
  const first = km.active().kid;
  clock.now = HOUR - LEAD;
  const next = (await km.tick()).scheduled!.active.kid;
  clock.now = HOUR - LEAD + 5;
  const { active, retired } = await km.rotate();
  expect(retired).toMatchObject({ kid: first, retiredAt: HOUR - LEAD + 5 });
  expect(km.active().kid).toBe(active.kid);
  const kids = (await store.listKeys()).map((k) => k.kid);
  expect(kids).toEqual([active.kid, first]);
  expect(kids).not.toContain(next);
  // The old key stops signing now, not at the time the dropped key would have taken over.
  expect((await store.listKeys()).find((k) => k.kid === first)?.removeAfter).toBe(
    HOUR - LEAD + 5 + 360_000,
  );
  await store.close();
});

test('a database written before scheduled rotation opens and keeps its key', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-old-keys-'));
  const path = join(dir, 'identity.db');
  try {
    const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
      format: 'jwk',
    });
    const old = new DatabaseSync(path);
    old.exec(`CREATE TABLE signing_keys (
      kid TEXT PRIMARY KEY, jwk TEXT NOT NULL, created_at INTEGER NOT NULL,
      retired_at INTEGER, remove_after INTEGER)`);
    old
      .prepare('INSERT INTO signing_keys (kid, jwk, created_at) VALUES (?, ?, ?)')
      .run('old-kid', JSON.stringify({ ...jwk, kid: 'old-kid', alg: 'ES256', use: 'sig' }), 500);
    old.close();

    const clock = { now: 1000 };
    const store = openSqliteIdentityStore(path);
    expect(await store.listKeys()).toEqual([
      expect.objectContaining({ kid: 'old-kid', createdAt: 500, activatesAt: undefined }),
    ]);
    const km = await manager(store, clock);
    expect(km.active()).toMatchObject({ kid: 'old-kid', activatesAt: 500, active: true });
    // The schedule counts from its creation.
    clock.now = 500 + HOUR - LEAD;
    const { scheduled } = await km.tick();
    expect(scheduled?.retired?.kid).toBe('old-kid');
    expect(scheduled?.active.activatesAt).toBe(500 + HOUR);
    await store.close();
    // Opening the migrated file again changes nothing.
    const again = openSqliteIdentityStore(path);
    expect((await again.listKeys()).map((k) => k.kid)).toEqual([scheduled?.active.kid, 'old-kid']);
    await again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
