import { openSqliteAdapterStore } from './sqlite-adapter.ts';

function store() {
  const clock = { now: 1_000_000 };
  const s = openSqliteAdapterStore({ path: ':memory:', now: () => clock.now });
  return { s, clock };
}

test('stores, finds by id, user code and uid, and forgets after expiry', async () => {
  const { s, clock } = store();
  const device = new s.Adapter('DeviceCode');
  await device.upsert('d1', { userCode: 'ABCD-EFGH', uid: 'u1', grantId: 'g1' }, 60);
  expect(await device.find('d1')).toMatchObject({ userCode: 'ABCD-EFGH' });
  expect(await device.findByUserCode('ABCD-EFGH')).toMatchObject({ uid: 'u1' });
  expect(await device.findByUid('u1')).toMatchObject({ grantId: 'g1' });
  expect(await new s.Adapter('Session').find('d1')).toBeUndefined();
  clock.now += 60_000;
  expect(await device.find('d1')).toBeUndefined();
  s.close();
});

test('consume marks a one-time artefact so a replay is detected', async () => {
  const { s } = store();
  const codes = new s.Adapter('AuthorizationCode');
  await codes.upsert('c1', { grantId: 'g' }, 60);
  await codes.consume('c1');
  expect((await codes.find('c1'))?.consumed).toBe(1000);
  s.close();
});

test('revokeByGrantId removes every artefact of the grant, across models', async () => {
  const { s } = store();
  await new s.Adapter('AccessToken').upsert('a', { grantId: 'g1' }, 60);
  await new s.Adapter('RefreshToken').upsert('r', { grantId: 'g1' }, 60);
  await new s.Adapter('RefreshToken').upsert('other', { grantId: 'g2' }, 60);
  await new s.Adapter('Grant').revokeByGrantId('g1');
  expect(await new s.Adapter('AccessToken').find('a')).toBeUndefined();
  expect(await new s.Adapter('RefreshToken').find('r')).toBeUndefined();
  expect(await new s.Adapter('RefreshToken').find('other')).toBeDefined();
  s.close();
});

test('revokeClient removes the grants and artefacts of that client only', async () => {
  const { s } = store();
  await new s.Adapter('Grant').upsert('g1', { clientId: 'cli', accountId: 'acme/1' }, 60);
  await new s.Adapter('RefreshToken').upsert('r1', { clientId: 'cli', grantId: 'g1' }, 60);
  await new s.Adapter('Grant').upsert('g2', { clientId: 'web', accountId: 'acme/1' }, 60);
  expect(s.revokeClient('cli')).toBe(1);
  expect(await new s.Adapter('RefreshToken').find('r1')).toBeUndefined();
  expect(await new s.Adapter('Grant').find('g2')).toBeDefined();
  s.close();
});

test('replay detection ids live apart from other models, expire and are swept', async () => {
  const { s, clock } = store();
  const replay = new s.Adapter('ReplayDetection');
  await replay.upsert('j1', { jti: 'j1', iss: 'acme-gateway' }, 60);
  expect(await replay.find('j1')).toMatchObject({ iss: 'acme-gateway' });
  expect(await new s.Adapter('AccessToken').find('j1')).toBeUndefined();
  await new s.Adapter('Session').upsert('j2', { kind: 'Session' }, 60);
  expect(await replay.find('j2')).toBeUndefined();
  clock.now += 60_000;
  expect(await replay.find('j1')).toBeUndefined();
  await replay.upsert('j3', { jti: 'j3' }, 60);
  clock.now += 61_000;
  s.sweep();
  clock.now -= 61_000;
  // Swept, not only hidden: even with the clock turned back it is gone.
  expect(await replay.find('j3')).toBeUndefined();
  await replay.upsert('j4', { jti: 'j4' }, 60);
  await replay.destroy('j4');
  expect(await replay.find('j4')).toBeUndefined();
  s.close();
});
