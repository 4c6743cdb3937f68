import {
  Metadata,
  credentials,
  status,
  type ChannelCredentials,
  type ServiceError,
} from '@grpc/grpc-js';
import { pino } from 'pino';
import { HealthClient } from '../gen/grpc/health/v1/health.ts';
import {
  createTestPki,
  issueUncheckedCertificate,
  serviceSpiffeId,
  type TestPki,
  type TestWorkload,
} from '../mesh/ca/index.ts';
import { createMeshClient, createMeshServer, type MeshServer } from '../mesh/kit/index.ts';

// Every refusal below is tried against this one running audit server; after each, a good
// client must still be served.

type LogLine = { msg: string; reason?: string; event?: string; [key: string]: unknown };

function captureLogger() {
  const lines: LogLine[] = [];
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => lines.push(JSON.parse(line)) },
  );
  return { logger, lines };
}

async function waitForLog(lines: LogLine[], match: (line: LogLine) => boolean): Promise<LogLine> {
  for (let i = 0; i < 250; i += 1) {
    const found = lines.find(match);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`log line not found in:\n${lines.map((l) => l.msg).join('\n')}`);
}

function check(client: HealthClient): Promise<ServiceError | number> {
  return new Promise((resolve) => {
    client.check({ service: '' }, new Metadata(), { deadline: Date.now() + 5000 }, (err, res) =>
      resolve(err ?? res.status),
    );
  });
}

const SERVING = 1;

let pki: TestPki;
let otherPki: TestPki;
let server: MeshServer;
let address: string;
const serverLog = captureLogger();
const clients: HealthClient[] = [];

function rawClient(creds: ChannelCredentials): HealthClient {
  const client = new HealthClient(address, creds);
  clients.push(client);
  return client;
}

function tlsClient(workload: TestWorkload, trust = pki.caPem): HealthClient {
  return rawClient(
    credentials.createSsl(
      Buffer.from(trust),
      Buffer.from(workload.keyPem),
      Buffer.from(workload.certPem),
    ),
  );
}

async function expectGoodClientServed(): Promise<void> {
  const good = createMeshClient(HealthClient, {
    address,
    tls: pki.services.inference!,
    expectedServer: pki.services.audit!.spiffeId,
    logger: pino({ level: 'silent' }),
  });
  clients.push(good);
  expect(await check(good)).toBe(SERVING);
}

beforeAll(async () => {
  pki = await createTestPki({ services: ['audit', 'inference', 'gateway', 'policy'] });
  otherPki = await createTestPki({ services: ['inference'] });
  server = createMeshServer({
    tls: pki.services.audit!,
    allowedPeers: [pki.services.inference!.spiffeId, pki.services.policy!.spiffeId],
    logger: serverLog.logger,
  });
  ({ address } = await server.listen());
  await expectGoodClientServed();
});

afterAll(async () => {
  for (const client of clients) client.close();
  await server.shutdown(1000);
  await pki.cleanup();
  await otherPki.cleanup();
});

afterEach(async () => {
  await expectGoodClientServed();
});

describe('mesh server refusals (attacker side)', () => {
  it('refuses a plaintext client and logs that it did not speak TLS', async () => {
    const result = await check(rawClient(credentials.createInsecure()));
    expect((result as ServiceError).code).toBe(status.UNAVAILABLE);
    const line = await waitForLog(
      serverLog.lines,
      (l) => l.event === 'mesh.tls.refused' && /plaintext/.test(l.reason ?? ''),
    );
    expect(line.msg).toMatch(/refused connection from 127\.0\.0\.1:\d+: not a TLS handshake/);
  });

  it('refuses a TLS client without a client certificate', async () => {
    const result = await check(rawClient(credentials.createSsl(Buffer.from(pki.caPem))));
    expect((result as ServiceError).code).toBe(status.UNAVAILABLE);
    await waitForLog(serverLog.lines, (l) => l.reason === 'no client certificate');
  });

  it('refuses a client certificate from another CA', async () => {
    const result = await check(tlsClient(otherPki.services.inference!));
    expect((result as ServiceError).code).toBe(status.UNAVAILABLE);
    const line = await waitForLog(serverLog.lines, (l) =>
      /not signed by a trusted mesh CA/.test(l.reason ?? ''),
    );
    // The log names what the refused peer claimed to be.
    expect(line.presented).toEqual([serviceSpiffeId('inference')]);
  });

  it('refuses an expired client certificate', async () => {
    const now = Date.now();
    const expired = await issueUncheckedCertificate(pki.ca, pki.dir, {
      stem: 'expired-inference',
      uris: [serviceSpiffeId('inference')],
      notBefore: new Date(now - 48 * 3_600_000),
      notAfter: new Date(now - 24 * 3_600_000),
    });
    const result = await check(tlsClient(expired));
    expect((result as ServiceError).code).toBe(status.UNAVAILABLE);
    const line = await waitForLog(
      serverLog.lines,
      (l) => l.reason === 'client certificate has expired',
    );
    expect(line.code).toBe('CERT_HAS_EXPIRED');
  });

  it('refuses a valid certificate whose SPIFFE ID is not on the allow-list', async () => {
    const result = await check(tlsClient(pki.services.gateway!));
    expect((result as ServiceError).code).toBe(status.UNAUTHENTICATED);
    // The caller learns nothing about the allow-list; the log says exactly why.
    expect((result as ServiceError).details).toBe('peer is not authenticated for this service');
    const line = await waitForLog(
      serverLog.lines,
      (l) => l.event === 'mesh.peer.refused' && l.spiffeId === pki.services.gateway!.spiffeId,
    );
    expect(line.reason).toBe(`peer ${pki.services.gateway!.spiffeId} is not on the allow-list`);
  });

  it('refuses a certificate with two URI SANs even if one of them is allowed', async () => {
    const twoUris = await issueUncheckedCertificate(pki.ca, pki.dir, {
      stem: 'two-uris',
      uris: [serviceSpiffeId('inference'), serviceSpiffeId('gateway')],
    });
    const result = await check(tlsClient(twoUris));
    expect((result as ServiceError).code).toBe(status.UNAUTHENTICATED);
    const line = await waitForLog(serverLog.lines, (l) => /has 2 URI SANs/.test(l.reason ?? ''));
    expect(line.reason).toMatch(/not an X\.509-SVID/);
  });

  it('client refuses a server that holds another service’s certificate', async () => {
    // The impostor holds a perfectly valid certificate from the same CA, for svc/policy.
    const impostor = createMeshServer({
      tls: pki.services.policy!,
      allowedPeers: [pki.services.inference!.spiffeId],
      logger: pino({ level: 'silent' }),
    });
    const { address: impostorAddress } = await impostor.listen();
    const clientLog = captureLogger();
    const client = createMeshClient(HealthClient, {
      address: impostorAddress,
      tls: pki.services.inference!,
      expectedServer: pki.services.audit!.spiffeId,
      logger: clientLog.logger,
    });
    try {
      const result = await check(client);
      expect((result as ServiceError).code).toBe(status.UNAVAILABLE);
      const line = await waitForLog(clientLog.lines, (l) => l.event === 'mesh.server.refused');
      expect(line.reason).toBe(
        `server presented ${pki.services.policy!.spiffeId}, expected ${pki.services.audit!.spiffeId}`,
      );
    } finally {
      client.close();
      await impostor.shutdown(1000);
    }
  });
});
