import { status, type ServiceError } from '@grpc/grpc-js';
import { pino } from 'pino';
import { createTestPki, type TestPki } from '../mesh/ca/index.ts';
import { createMeshClient, createMeshServer, type MeshServer } from '../mesh/kit/index.ts';
import { IdentityAdminServiceClient } from '../gen/bulwark/identity/v1/identity.ts';
import { createBroker, createMemoryAuditSink, type Broker } from '../identity/index.ts';
import { createIdentityAdminService } from '../identity/admin-service.ts';

const logger = pino({ level: 'silent' });
let pki: TestPki;
let broker: Broker;
let server: MeshServer;
let address: string;
const audit = createMemoryAuditSink();

beforeAll(async () => {
  pki = await createTestPki({ services: ['identity', 'gateway', 'inference'] });
  const id = pki.services.identity!;
  broker = await createBroker({
    tls: { cert: id.certPem, key: id.keyPem },
    databasePath: ':memory:',
    organisations: [
      {
        id: 'globex',
        displayName: 'Globex',
        issuer: 'https://idp.globex.example',
        clientId: 'bulwark',
        clientSecret: 'top-secret-value',
        emailDomains: ['globex.example'],
        roleMapping: [],
      },
      {
        id: 'acme',
        displayName: 'Acme',
        issuer: 'https://idp.acme.example',
        clientId: 'bulwark',
        clientSecret: 'another-secret-value',
        emailDomains: ['acme.example'],
        roleMapping: [],
        trustedIssuers: [{ issuer: 'https://idp.acme.example', audience: 'bulwark' }],
      },
    ],
    clients: [
      {
        clientId: 'bulwark-cli',
        auth: 'none',
        grantTypes: ['urn:ietf:params:oauth:grant-type:device_code'],
      },
    ],
    audit,
    keyCheckIntervalMs: 0,
  });
  server = createMeshServer({
    tls: { certFile: id.certFile, keyFile: id.keyFile, caFile: pki.caFile },
    allowedPeers: ['spiffe://bulwark.local/svc/gateway'],
    logger,
  });
  const admin = createIdentityAdminService(broker, { logger });
  server.addService(admin.definition, admin.implementation);
  address = `127.0.0.1:${(await server.listen()).port}`;
});
afterAll(async () => {
  await server.shutdown(100);
  await broker.close();
  await pki.cleanup();
});

function client(name: string) {
  const w = pki.services[name]!;
  return createMeshClient(IdentityAdminServiceClient, {
    address,
    tls: { certPem: w.certPem, keyPem: w.keyPem, caPem: pki.caPem },
    expectedServer: 'spiffe://bulwark.local/svc/identity',
    logger,
  });
}

const call = <T>(fn: (cb: (err: ServiceError | null, res: T) => void) => void) =>
  new Promise<T>((resolve, reject) => fn((err, res) => (err ? reject(err) : resolve(res))));

test('lists organisations sorted, without secrets', async () => {
  const c = client('gateway');
  const res = await call<{ organisations: { id: string; trustedIssuers: string[] }[] }>((cb) =>
    c.listOrganisations({}, cb),
  );
  expect(res.organisations.map((o) => o.id)).toEqual(['acme', 'globex']);
  expect(res.organisations[0]!.trustedIssuers).toEqual(['https://idp.acme.example']);
  expect(JSON.stringify(res)).not.toContain('secret');
  c.close();
});

test('rotates signing keys on demand and audits it', async () => {
  const c = client('gateway');
  const before = broker.signingKeys()[0]!.kid;
  const res = await call<{
    activeKey?: { kid: string; active: boolean };
    publishedKeys: { kid: string }[];
  }>((cb) => c.rotateSigningKeys({ reason: 'operator request' }, cb));
  expect(res.activeKey?.active).toBe(true);
  expect(res.activeKey?.kid).not.toBe(before);
  expect(res.publishedKeys.map((k) => k.kid)).toEqual([res.activeKey?.kid, before]);
  expect(
    audit.events.some((e) => e.action === 'key.rotate' && e.reason === 'operator request'),
  ).toBe(true);
  c.close();
});

test('lists the published signing keys with when each signs', async () => {
  const c = client('gateway');
  const res = await call<{
    keys: {
      kid: string;
      active: boolean;
      createdAt?: Date;
      activatesAt?: Date;
      retiredAt?: Date;
    }[];
  }>((cb) => c.listSigningKeys({}, cb));
  c.close();
  // After the on-demand rotation above: the new key signs, the old one is kept for its tokens.
  expect(res.keys.map((k) => k.kid)).toEqual(broker.signingKeys().map((k) => k.kid));
  const [active, retired] = res.keys;
  expect(active).toMatchObject({ active: true });
  expect(active!.activatesAt!.getTime()).toBeGreaterThanOrEqual(active!.createdAt!.getTime());
  expect(active!.activatesAt!.getTime()).toBeLessThanOrEqual(Date.now());
  expect(retired).toMatchObject({ active: false });
  expect(retired!.retiredAt!.getTime()).toBeLessThanOrEqual(Date.now());
  // Public keys only: nothing that looks like private key material.
  expect(JSON.stringify(res)).not.toMatch(/"d"|PRIVATE|privateKey/);
});

test('revokes a known client; an unknown one is NOT_FOUND', async () => {
  const c = client('gateway');
  const res = await call<{ revokedGrants: number }>((cb) =>
    c.revokeClient({ clientId: 'bulwark-cli', reason: 'lost laptop' }, cb),
  );
  expect(res.revokedGrants).toBe(0);
  await expect(
    call((cb) => c.revokeClient({ clientId: 'nobody', reason: '' }, cb)),
  ).rejects.toMatchObject({
    code: status.NOT_FOUND,
  });
  c.close();
});

test('refused: a mesh peer not on the allow-list', async () => {
  const c = client('inference');
  await expect(call((cb) => c.listOrganisations({}, cb))).rejects.toMatchObject({
    code: status.UNAUTHENTICATED,
  });
  // The key list is public material, but who may administer the broker still decides.
  await expect(call((cb) => c.listSigningKeys({}, cb))).rejects.toMatchObject({
    code: status.UNAUTHENTICATED,
  });
  c.close();
});
