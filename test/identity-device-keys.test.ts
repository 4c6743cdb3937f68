import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { createBroker } from '../identity/index.ts';
import { clientAssertion, postForm } from '../identity/testing/clients.ts';
import { startHarness, type Harness } from '../identity/testing/harness.ts';
import { createHttpAgent, parseForm } from '../identity/testing/http-agent.ts';
import { approveDevice } from '../identity/testing/device.ts';
import { createTestCa } from '../identity/testing/tls.ts';

const DEVICE = 'urn:ietf:params:oauth:grant-type:device_code';
let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

async function startDevice() {
  const { status, body } = await postForm(h.fetch, `${h.broker.issuer}/device/auth`, {
    client_id: 'bulwark-cli',
    scope: 'openid model:infer',
    resource: 'urn:bulwark:inference',
  });
  expect(status).toBe(200);
  return body as {
    device_code: string;
    user_code: string;
    verification_uri: string;
    verification_uri_complete: string;
  };
}

const poll = (deviceCode: string) =>
  postForm(h.fetch, `${h.broker.issuer}/token`, {
    grant_type: DEVICE,
    client_id: 'bulwark-cli',
    device_code: deviceCode,
  });

test('device flow: pending until the person approves, then a mesh token and a refresh token', async () => {
  const device = await startDevice();
  expect(device.user_code).toMatch(/\w{4}-\w{4}/);
  expect((await poll(device.device_code)).body.error).toBe('authorization_pending');
  const done = await approveDevice(h, device.verification_uri, device.user_code, 'confirm');
  expect(done.body).toContain('Device connected');
  const { status, body } = await poll(device.device_code);
  expect(status).toBe(200);
  const jwks = createLocalJWKSet(
    (await (await h.fetch(`${h.broker.issuer}/jwks`)).json()) as { keys: never[] },
  );
  const { payload } = await jwtVerify(String(body.access_token), jwks, {
    audience: 'urn:bulwark:inference',
  });
  expect(payload).toMatchObject({ sub: 'acme/u-1001', org: 'acme', client_id: 'bulwark-cli' });
  expect(body.refresh_token).toBeTruthy();
  // The device code is single use.
  expect((await poll(device.device_code)).body.error).toBe('invalid_grant');
});

test('refused: device flow the person denies → access_denied', async () => {
  const device = await startDevice();
  await approveDevice(h, device.verification_uri, device.user_code, 'abort');
  expect((await poll(device.device_code)).body.error).toBe('access_denied');
});

test('refused: a wrong user code shows a clear page', async () => {
  const a = createHttpAgent({ ca: h.ca.cert });
  const page = await a.get(`${h.broker.issuer}/device`);
  const form = parseForm(page, 'op.deviceInputForm');
  const res = await a.post(form.action, { ...form.fields, user_code: 'BCDF-GHJK' });
  expect(res.body).toContain('not valid or has expired');
});

async function gatewayToken() {
  const { body } = await postForm(h.fetch, `${h.broker.issuer}/token`, {
    grant_type: 'client_credentials',
    client_id: 'acme-gateway',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await clientAssertion('acme-gateway', h.gatewayKey, h.broker.issuer),
    resource: 'urn:bulwark:inference',
  });
  return String(body.access_token);
}

async function publishedKids() {
  const jwks = (await (await h.fetch(`${h.broker.issuer}/jwks`)).json()) as {
    keys: { kid: string }[];
  };
  return jwks.keys.map((k) => k.kid);
}

test('key rotation: old tokens verify until they expire, then the old key leaves the JWKS', async () => {
  const before = await gatewayToken();
  const oldKid = decodeProtectedHeader(before).kid!;
  await h.broker.rotateSigningKeys('test');
  const after = await gatewayToken();
  const newKid = decodeProtectedHeader(after).kid!;
  expect(newKid).not.toBe(oldKid);
  expect(await publishedKids()).toEqual([newKid, oldKid]);
  const jwks = createLocalJWKSet(
    (await (await h.fetch(`${h.broker.issuer}/jwks`)).json()) as { keys: never[] },
  );
  await expect(jwtVerify(before, jwks)).resolves.toBeTruthy();
  await expect(jwtVerify(after, jwks)).resolves.toBeTruthy();
  expect(
    h.audit.events.some(
      (e) => e.action === 'key.rotate' && e.reason === 'test' && e.target?.kid === newKid,
    ),
  ).toBe(true);

  // Still published just before every token it signed has expired...
  h.clock.now += 300_000;
  await h.broker.checkKeyRotation();
  expect(await publishedKids()).toContain(oldKid);
  // ...and gone once they all have.
  h.clock.now += 61_000;
  await h.broker.checkKeyRotation();
  expect(await publishedKids()).toEqual([newKid]);
});

test('key rotation on schedule: the next key is published two minutes ahead, then signs', async () => {
  const current = h.broker.signingKeys()[0]!;
  const due = current.activatesAt + 24 * 3600_000;
  h.clock.now = due - 120_000;
  await h.broker.checkKeyRotation();
  const keys = h.broker.signingKeys();
  expect(keys[0]).toMatchObject({ kid: current.kid, active: true, retiredAt: due });
  const next = keys.find((k) => k.activatesAt === due)!;
  expect(next.active).toBe(false);
  // In the JWKS already, but not signing yet.
  expect(await publishedKids()).toEqual([current.kid, next.kid]);
  expect(decodeProtectedHeader(await gatewayToken()).kid).toBe(current.kid);
  const published = h.audit.events.find((e) => e.action === 'key.publish');
  expect(published).toMatchObject({
    reason: 'scheduled',
    target: {
      kid: next.kid,
      publishedAt: new Date(due - 120_000).toISOString(),
      activatesAt: new Date(due).toISOString(),
      previousKid: current.kid,
    },
  });
  // At its time it signs, before any key check.
  h.clock.now = due;
  expect(decodeProtectedHeader(await gatewayToken()).kid).toBe(next.kid);
  expect(await publishedKids()).toEqual([next.kid, current.kid]);
  await h.broker.checkKeyRotation();
  expect(
    h.audit.events.find((e) => e.action === 'key.rotate' && e.reason === 'scheduled'),
  ).toMatchObject({ target: { kid: next.kid, previousKid: current.kid } });
  // No key material in either record.
  const records = JSON.stringify(h.audit.events.filter((e) => e.action.startsWith('key.')));
  expect(records).not.toMatch(/"d"|"x"|"y"/);
});

test('revoking a client refuses it from then on', async () => {
  await gatewayToken();
  await h.broker.revokeClient('acme-gateway', 'test');
  const { status, body } = await postForm(h.fetch, `${h.broker.issuer}/token`, {
    grant_type: 'client_credentials',
    client_id: 'acme-gateway',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await clientAssertion('acme-gateway', h.gatewayKey, h.broker.issuer),
    resource: 'urn:bulwark:inference',
  });
  expect(status).toBe(401);
  expect(body.error).toBe('invalid_client');
  expect(
    h.audit.events.some((e) => e.action === 'client.revoke' && e.actor.clientId === 'acme-gateway'),
  ).toBe(true);
});

test('a renewed TLS certificate is served to new connections without a restart', async () => {
  const { connect } = await import('node:tls');
  const served = async () => {
    const url = new URL(h.broker.url);
    return await new Promise<string>((resolve, reject) => {
      const socket = connect(
        { host: url.hostname, port: Number(url.port), ca: h.ca.cert, servername: 'localhost' },
        () => {
          resolve(socket.getPeerX509Certificate()!.fingerprint256);
          socket.end();
        },
      );
      socket.once('error', reject);
    });
  };
  const before = await served();
  const renewed = await h.ca.server('identity');
  h.broker.updateTls(renewed);
  const after = await served();
  expect(after).not.toBe(before);
  const { X509Certificate } = await import('node:crypto');
  expect(after).toBe(new X509Certificate(renewed.cert).fingerprint256);
});

test('signing keys persist in SQLite across restarts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-keys-'));
  const ca = await createTestCa();
  const options = {
    tls: await ca.server(),
    databasePath: join(dir, 'identity.db'),
    organisations: [],
    clients: [],
    keyCheckIntervalMs: 0,
  };
  try {
    const first = await createBroker(options);
    await first.rotateSigningKeys();
    const kids = first.signingKeys().map((k) => k.kid);
    await first.close();
    const second = await createBroker(options);
    expect(second.signingKeys().map((k) => k.kid)).toEqual(kids);
    await second.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad options are refused with the option named', async () => {
  await expect(
    createBroker({
      tls: { cert: 'x', key: 'y' },
      databasePath: ':memory:',
      organisations: [
        {
          id: 'Bad Org',
          displayName: 'x',
          issuer: 'https://x',
          clientId: 'c',
          clientSecret: 's',
          emailDomains: [],
          roleMapping: [],
        },
      ],
      clients: [],
    }),
  ).rejects.toThrow('organisations[0].id');
});
