import { openKeyManager } from './key-manager.ts';
import { openSqliteIdentityStore } from './sqlite-store.ts';

async function keys() {
  const clock = { now: 0 };
  const store = openSqliteIdentityStore(':memory:');
  const km = await openKeyManager({
    store,
    now: () => clock.now,
    rotationSeconds: 3600,
    retainSeconds: 360,
  });
  return { km, clock, store };
}

test('starts with one active ES256 key whose private part is only in the private JWKS', async () => {
  const { km, store } = await keys();
  expect(km.published()).toHaveLength(1);
  expect(km.active()).toMatchObject({ alg: 'ES256', active: true });
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

test('rotation keeps the old key published for the retention time, then drops it', async () => {
  const { km, clock, store } = await keys();
  const first = km.active().kid;
  clock.now = 1000;
  km.privateJwks();
  const { active, retired } = await km.rotate();
  expect(retired?.kid).toBe(first);
  expect(retired?.removeAfter).toBe(1000 + 360_000);
  expect(km.published().map((k) => k.kid)).toEqual([active.kid, first]);
  // The provider still holds the old set: a change is reported once, until it is rebuilt.
  expect((await km.tick()).changed).toBe(true);
  km.privateJwks();
  clock.now = 1000 + 359_999;
  expect(await km.tick()).toMatchObject({ removed: [], changed: false });
  clock.now = 1000 + 360_000;
  expect(await km.tick()).toMatchObject({ removed: [first], changed: true });
  expect(km.privateJwks().keys.map((k) => k.kid)).toEqual([active.kid]);
  await store.close();
});

test('tick rotates when the active key reaches the rotation period, not before', async () => {
  const { km, clock, store } = await keys();
  const first = km.active().kid;
  km.privateJwks();
  clock.now = 3_599_999;
  expect(await km.tick()).toMatchObject({ rotated: undefined, changed: false });
  clock.now = 3_600_000;
  expect((await km.tick()).rotated?.retired?.kid).toBe(first);
  expect(km.active().kid).not.toBe(first);
  await store.close();
});

test('a rotation made by another replica is picked up by tick, and a racing rotation is not doubled', async () => {
  const clock = { now: 0 };
  const store = openSqliteIdentityStore(':memory:');
  const a = await openKeyManager({
    store,
    now: () => clock.now,
    rotationSeconds: 3600,
    retainSeconds: 360,
  });
  const b = await openKeyManager({
    store,
    now: () => clock.now,
    rotationSeconds: 3600,
    retainSeconds: 360,
  });
  expect(b.active().kid).toBe(a.active().kid);
  b.privateJwks();
  const { active } = await a.rotate();
  expect((await b.tick()).changed).toBe(true);
  expect(b.active().kid).toBe(active.kid);
  expect(b.published()).toHaveLength(2);
  await store.close();
});
