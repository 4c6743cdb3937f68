/**
 * The broker's way to the audit log, tried from the attacker's side: with the audit service
 * down, a privileged token (model:admin) is refused rather than issued unrecorded, while
 * logins and model:infer tokens go on and their records are queued (on disk, without any
 * token) and delivered once audit is back. Real audit service, real mTLS, real broker.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { AuditServiceClient } from '../gen/bulwark/audit/v1/audit.ts';
import { createTestPki, type TestPki } from '../mesh/ca/testing.ts';
import { createMeshClient, createMeshServer, type MeshServer } from '../mesh/kit/index.ts';
import { createAuditService, type AuditService } from '../services/audit/index.ts';
import { openSqliteStore } from '../services/audit/store/sqlite-store.ts';
import type { AuditStore } from '../services/audit/store/types.ts';
import { createBufferedAuditSink, type BufferedAuditSink } from '../identity/audit-queue.ts';
import { createAuditServiceSink } from '../identity/audit-service-sink.ts';
import { postForm } from '../identity/testing/clients.ts';
import { startHarness, type Harness } from '../identity/testing/harness.ts';

const quiet = pino({ level: 'silent' });
const id = (n: string) => `spiffe://bulwark.local/svc/${n}`;
const OPS_SECRET = randomBytes(24).toString('base64url');

let dir: string;
let pki: TestPki;
let store: AuditStore;
let audit: AuditService;
let server: MeshServer | undefined;
let port: number;
let client: AuditServiceClient;
let sink: BufferedAuditSink;
let h: Harness;
const lines: string[] = [];

async function startAudit(listenPort = 0): Promise<void> {
  server = createMeshServer({
    tls: pki.services.audit!,
    allowedPeers: [id('identity')],
    port: listenPort,
    logger: quiet,
  });
  audit.addTo(server);
  port = Number((await server.listen()).address.split(':').at(-1));
}

async function records(): Promise<Record<string, unknown>[]> {
  const size = await store.size();
  return (await store.readLeaves(0, size)).map(
    (leaf) => JSON.parse(leaf.data.toString('utf8')) as Record<string, unknown>,
  );
}

const opsToken = (scope: string, resource = 'urn:bulwark:inference') =>
  postForm(
    h.fetch,
    `${h.broker.issuer}/token`,
    { grant_type: 'client_credentials', resource, scope },
    { authorization: `Basic ${Buffer.from(`acme-ops:${OPS_SECRET}`).toString('base64')}` },
  );

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bulwark-identity-audit-'));
  pki = await createTestPki({ services: ['audit', 'identity'] });
  store = openSqliteStore({ path: join(dir, 'audit.sqlite') });
  audit = await createAuditService({
    store,
    signingKey: generateKeyPairSync('ed25519').privateKey,
    logger: quiet,
    checkpointIntervalMs: 0,
  });
  await startAudit();
  const w = pki.services.identity!;
  client = createMeshClient(AuditServiceClient, {
    address: `127.0.0.1:${port}`,
    tls: { certPem: w.certPem, keyPem: w.keyPem, caPem: w.caPem },
    expectedServer: id('audit'),
    logger: quiet,
    channelOptions: {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 300,
    },
  });
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    }),
  );
  sink = createBufferedAuditSink({
    sink: createAuditServiceSink(client, { deadlineMs: 1000 }),
    logger,
    queueFile: join(dir, 'identity-audit-queue.jsonl'),
    retryIntervalMs: 200,
    acknowledgeTimeoutMs: 1500,
  });
  h = await startHarness({
    brokerOptions: {
      audit: sink,
      logger,
      clients: [
        {
          clientId: 'acme-ops',
          org: 'acme',
          roles: ['model-admin'],
          auth: 'client_secret_basic',
          clientSecret: OPS_SECRET,
          grantTypes: ['client_credentials'],
          scopes: ['model:infer', 'model:admin'],
        },
      ],
    },
  });
}, 30_000);

afterAll(async () => {
  await h?.close();
  sink?.close();
  client?.close();
  await server?.shutdown(100);
  await audit?.close();
  await pki?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

test('audit up: a model:admin token is issued once its issuance is in the log', async () => {
  const { status, body } = await opsToken('model:admin');
  expect(status).toBe(200);
  const jti = JSON.parse(
    Buffer.from(String(body.access_token).split('.')[1]!, 'base64url').toString(),
  ).jti as string;
  // Acknowledged before the answer: already in the log, no waiting.
  const issued = (await records()).filter(
    (r) => r.action === 'token.issue' && (r.attributes as Record<string, string>).tokenId === jti,
  );
  expect(issued).toHaveLength(1);
  expect(issued[0]).toMatchObject({ service: 'identity', actor: { clientId: 'acme-ops' } });
  expect(JSON.stringify(await records())).not.toContain(String(body.access_token));
}, 20_000);

test('audit down: model:admin is refused (503, no token); model:infer goes on, queued on disk', async () => {
  await server!.shutdown(100);
  server = undefined;
  const before = (await records()).length;

  const admin = await opsToken('model:admin');
  expect(admin.status).toBe(503);
  expect(admin.body.error).toBe('temporarily_unavailable');
  expect(admin.body.access_token).toBeUndefined();
  expect(JSON.stringify(admin.body)).not.toMatch(/eyJ/);
  expect(lines.join('')).toContain('audit log did not acknowledge token.issue');

  const infer = await opsToken('model:infer');
  expect(infer.status).toBe(200);
  expect(String(infer.body.access_token)).toMatch(/^eyJ/);
  await until('the queue on disk', () => existsSync(join(dir, 'identity-audit-queue.jsonl')));
  const onDisk = readFileSync(join(dir, 'identity-audit-queue.jsonl'), 'utf8');
  expect(onDisk).toContain('token.refuse');
  expect(onDisk).not.toContain(String(infer.body.access_token));
  expect(onDisk).not.toContain(OPS_SECRET);
  expect(sink.reachable).toBe(false);
  expect(sink.queued).toBeGreaterThanOrEqual(2);
  expect(lines.join('')).toContain('audit service unreachable');
  // Nothing reached the log while it was down.
  expect((await records()).length).toBe(before);

  // Audit is back on the same address: the queue drains in order, the file goes away.
  await startAudit(port);
  await until('the queue to drain', () => sink.queued === 0, 15_000);
  const after = (await records()).slice(before);
  expect(after.map((r) => `${r.action}:${r.outcome}`)).toEqual(
    expect.arrayContaining(['token.refuse:denied', 'token.issue:success']),
  );
  const refusal = after.find((r) => r.action === 'token.refuse')!;
  expect(refusal.reason).toBe('audit unavailable for a privileged scope');
  expect(existsSync(join(dir, 'identity-audit-queue.jsonl'))).toBe(false);
  expect(lines.join('')).toContain('audit service reachable again');

  // And privileged tokens are issued again.
  expect((await opsToken('model:admin')).status).toBe(200);
}, 40_000);
