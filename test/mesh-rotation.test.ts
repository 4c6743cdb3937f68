import { X509Certificate } from 'node:crypto';
import { connect, type PeerCertificate } from 'node:tls';
import { writeFile } from 'node:fs/promises';
import {
  Metadata,
  makeGenericClientConstructor,
  status,
  type Client,
  type ServiceError,
} from '@grpc/grpc-js';
import { pino } from 'pino';
import { HealthClient } from '../gen/grpc/health/v1/health.ts';
import {
  certificateThumbprint,
  createTestPki,
  type TestPki,
  type TestWorkload,
} from '../mesh/ca/index.ts';
import {
  createMeshClient,
  createMeshCredentials,
  createMeshServer,
  peerIdentity,
  unaryHandler,
  type MeshServer,
} from '../mesh/kit/index.ts';
import { jsonUnaryMethod } from '../mesh/kit/testing.ts';

// A tiny service that tells the caller which client certificate the server saw.
const WhoAmIService = {
  whoAmI: jsonUnaryMethod('/bulwark.test.v1.WhoAmIService/WhoAmI'),
} as const;
interface WhoAmIClient extends Client {
  whoAmI(
    request: object,
    callback: (err: ServiceError | null, res: { thumbprint?: string }) => void,
  ): void;
}
const WhoAmIClient = makeGenericClientConstructor(
  WhoAmIService,
  'WhoAmIService',
) as unknown as new (
  ...args: ConstructorParameters<ReturnType<typeof makeGenericClientConstructor>>
) => WhoAmIClient;

type LogLine = { msg: string; event?: string; [key: string]: unknown };

const SERVING = 1;
let pki: TestPki;
let nextPki: TestPki;
let server: MeshServer;
let port: number;
let address: string;
const lines: LogLine[] = [];
const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });

/** The certificate the server presents right now, read with a raw TLS handshake. */
function presentedCertificate(client: TestWorkload, trust: string): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      ca: trust,
      cert: client.certPem,
      key: client.keyPem,
      ALPNProtocols: ['h2'],
      checkServerIdentity: () => undefined,
    });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      resolve(cert);
    });
    socket.once('error', reject);
  });
}

async function until(condition: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i += 1) {
    // A handshake during the swap itself may fail; only the settled state counts.
    if (await condition().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('condition not met');
}

async function call(workload: TestWorkload, trustPem: string): Promise<number | ServiceError> {
  const client = createMeshClient(HealthClient, {
    address,
    tls: { certPem: workload.certPem, keyPem: workload.keyPem, caPem: trustPem },
    expectedServer: 'spiffe://bulwark.local/svc/audit',
    logger: pino({ level: 'silent' }),
  });
  try {
    return await new Promise((resolve) => {
      client.check({ service: '' }, new Metadata(), { deadline: Date.now() + 5000 }, (err, res) =>
        resolve(err ?? res.status),
      );
    });
  } finally {
    client.close();
  }
}

beforeEach(async () => {
  lines.length = 0;
  pki = await createTestPki({ services: ['audit', 'inference'] });
  nextPki = await createTestPki({ services: ['audit', 'inference'] });
  server = createMeshServer({
    tls: pki.services.audit!,
    allowedPeers: ['spiffe://bulwark.local/svc/inference'],
    reloadIntervalMs: 25,
    logger,
  });
  server.addService(WhoAmIService, {
    whoAmI: unaryHandler(async (call) => ({
      thumbprint: peerIdentity(call).certificateThumbprint,
    })),
  });
  ({ port, address } = await server.listen());
});

afterEach(async () => {
  await server.shutdown(1000);
  await pki.cleanup();
  await nextPki.cleanup();
});

describe('certificate rotation without restart', () => {
  it('moves a running server to a new CA chain when its files are swapped', async () => {
    const oldInference = pki.services.inference!;
    const newInference = nextPki.services.inference!;
    expect(await call(oldInference, pki.caPem)).toBe(SERVING);
    // Before the swap, a client of the new CA cannot talk to the server.
    expect(await call(newInference, nextPki.caPem)).not.toBe(SERVING);

    // Swap: the bundle now trusts old + new roots; the server's own pair comes from the new CA.
    const { audit } = pki.services;
    await writeFile(audit!.caFile, pki.caPem + nextPki.caPem);
    await writeFile(audit!.keyFile, nextPki.services.audit!.keyPem);
    await writeFile(audit!.certFile, nextPki.services.audit!.certPem);

    const expected = nextPki.services.audit!.certPem;
    await until(async () => {
      const cert = await presentedCertificate(oldInference, pki.caPem + nextPki.caPem);
      return cert.raw.equals(new X509Certificate(expected).raw);
    });
    expect(lines.some((l) => l.event === 'mesh.tls.reloaded')).toBe(true);

    // The new chain works end to end, on the same port, without a restart.
    expect(await call(newInference, nextPki.caPem)).toBe(SERVING);
    // Old-CA clients that already trust both roots keep working during the transition.
    expect(await call(oldInference, pki.caPem + nextPki.caPem)).toBe(SERVING);
    // A client that trusts only the old root no longer accepts the server.
    const stale = await call(oldInference, pki.caPem);
    expect((stale as ServiceError).code).toBe(status.UNAVAILABLE);
  });

  it('picks up a re-issued certificate from the same CA', async () => {
    const before = await presentedCertificate(pki.services.inference!, pki.caPem);
    const reissued = await pki.issueService('audit');
    await until(async () => {
      const now = await presentedCertificate(pki.services.inference!, pki.caPem);
      return now.serialNumber !== before.serialNumber;
    });
    const after = await presentedCertificate(pki.services.inference!, pki.caPem);
    expect(after.fingerprint256).toBe(new X509Certificate(reissued.certPem).fingerprint256);
    expect(await call(pki.services.inference!, pki.caPem)).toBe(SERVING);
  });

  it('keeps serving with the old pair while a swap is half done (key does not match)', async () => {
    const before = await presentedCertificate(pki.services.inference!, pki.caPem);
    // Only the key is replaced: the pair no longer matches and must not be used.
    await writeFile(pki.services.audit!.keyFile, nextPki.services.audit!.keyPem);
    await until(async () => lines.some((l) => /cannot be used yet/.test(l.msg)));
    const during = await presentedCertificate(pki.services.inference!, pki.caPem);
    expect(during.fingerprint256).toBe(before.fingerprint256);
    expect(await call(pki.services.inference!, pki.caPem)).toBe(SERVING);
  });

  it('clients pick up their own re-issued certificate files for new connections', async () => {
    const tls = pki.services.inference!;
    const creds = createMeshCredentials({
      tls,
      expectedServer: 'spiffe://bulwark.local/svc/audit',
      reloadIntervalMs: 25,
      logger: pino({ level: 'silent' }),
    });
    const seenBy = async () => {
      // A private subchannel pool forces a fresh connection with the current files.
      const client = new WhoAmIClient(address, creds, { 'grpc.use_local_subchannel_pool': 1 });
      try {
        return await new Promise<string | undefined>((resolve, reject) =>
          client.whoAmI({}, (err, res) => (err ? reject(err) : resolve(res.thumbprint))),
        );
      } finally {
        client.close();
      }
    };
    expect(await seenBy()).toBe(certificateThumbprint(tls.certPem));
    const reissued = await pki.issueService('inference');
    await until(async () => (await seenBy()) === certificateThumbprint(reissued.certPem));
    expect(certificateThumbprint(reissued.certPem)).not.toBe(certificateThumbprint(tls.certPem));
  });
});
