import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  makeGenericClientConstructor,
  Metadata,
  status,
  type Client,
  type ServiceError,
} from '@grpc/grpc-js';
import { pino } from 'pino';
import { HealthClient } from '../../gen/grpc/health/v1/health.ts';
import { createTestPki, type TestPki, type TestWorkload } from '../ca/index.ts';
import { createMeshClient } from './client.ts';
import { unaryHandler } from './handlers.ts';
import { probeHealth } from './health-probe.ts';
import { createMeshServer, type MeshServer } from './server.ts';
import { jsonUnaryMethod } from './testing.ts';

/*
 * The server's own SPIFFE ID may call grpc.health.v1.Health/Check (container probes run beside
 * the service with its certificate) and nothing else; everyone else is exactly as before.
 */

const SecretService = {
  read: jsonUnaryMethod('/bulwark.test.v1.SecretService/Read'),
} as const;
interface SecretClient extends Client {
  read(
    request: object,
    callback: (err: ServiceError | null, response: { secret: string }) => void,
  ): void;
}
const SecretClient = makeGenericClientConstructor(
  SecretService,
  'SecretService',
) as unknown as new (
  ...args: ConstructorParameters<ReturnType<typeof makeGenericClientConstructor>>
) => SecretClient;

const silent = pino({ level: 'silent' });
const MAIN = fileURLToPath(new URL('./health-probe-main.ts', import.meta.url));

let pki: TestPki;
let foreign: TestPki;
let server: MeshServer;
let address: string;
let audit: TestWorkload;

beforeAll(async () => {
  pki = await createTestPki({ services: ['audit', 'inference', 'policy'] });
  foreign = await createTestPki({ services: ['audit'] });
  audit = pki.services.audit!;
  server = createMeshServer({
    tls: { certFile: audit.certFile, keyFile: audit.keyFile, caFile: pki.caFile },
    allowedPeers: [pki.services.inference!.spiffeId],
    logger: silent,
  });
  server.addService(SecretService, {
    read: unaryHandler(async () => ({ secret: 'only-for-peers' })),
  });
  const { port } = await server.listen();
  address = `127.0.0.1:${port}`;
});
afterAll(async () => {
  await server?.shutdown(100);
  await pki?.cleanup();
  await foreign?.cleanup();
});

const tlsOf = (w: TestWorkload, caFile = pki.caFile) => ({
  certFile: w.certFile,
  keyFile: w.keyFile,
  caFile,
});

function callAs<C extends Client>(
  Ctor: new (...args: never[]) => C,
  who: TestWorkload,
  caFile?: string,
): C {
  return createMeshClient(Ctor as never, {
    address,
    tls: tlsOf(who, caFile),
    expectedServer: audit.spiffeId,
    logger: silent,
    defaultDeadlineMs: 3000,
  }) as C;
}

const read = (client: SecretClient) =>
  new Promise<{ code: number; secret?: string }>((resolve) => {
    client.read({}, (err, res) =>
      resolve(err ? { code: err.code } : { code: 0, secret: res.secret }),
    );
  });
const check = (client: HealthClient) =>
  new Promise<{ code: number; status?: number }>((resolve) => {
    client.check({ service: '' }, (err, res) =>
      resolve(err ? { code: err.code } : { code: 0, status: res.status }),
    );
  });

describe('health of a mesh server, asked by the server itself', () => {
  it('answers the probe with the server status, and follows it', async () => {
    expect(await probeHealth({ address, tls: tlsOf(audit) })).toEqual({
      serving: true,
      status: 'SERVING',
    });
    expect(
      await probeHealth({ address, tls: tlsOf(audit), service: 'bulwark.test.v1.SecretService' }),
    ).toEqual({ serving: true, status: 'SERVING' });
    server.health.setStatus('', 'NOT_SERVING');
    try {
      expect(await probeHealth({ address, tls: tlsOf(audit) })).toEqual({
        serving: false,
        status: 'NOT_SERVING',
      });
    } finally {
      server.health.setStatus('', 'SERVING');
    }
    const unknown = await probeHealth({ address, tls: tlsOf(audit), service: 'no.Such' });
    expect(unknown).toEqual({ serving: false, status: expect.stringMatching(/^5 /) });
  });

  it("refuses the server's own identity every method but Health/Check", async () => {
    const self = callAs(SecretClient, audit);
    try {
      expect(await read(self)).toEqual({ code: status.UNAUTHENTICATED });
    } finally {
      self.close();
    }
    // Watch is a long-lived stream: not a probe, so not allowed either.
    const health = callAs(HealthClient, audit);
    try {
      const code = await new Promise<number>((resolve) => {
        const stream = health.watch({ service: '' }, new Metadata());
        stream.on('data', () => resolve(0));
        stream.on('error', (err: ServiceError) => resolve(err.code));
      });
      expect(code).toBe(status.UNAUTHENTICATED);
    } finally {
      health.close();
    }
  });

  it('still refuses health to a mesh peer not on the allow-list', async () => {
    const policy = callAs(HealthClient, pki.services.policy!);
    try {
      expect(await check(policy)).toEqual({ code: status.UNAUTHENTICATED });
    } finally {
      policy.close();
    }
  });

  it('refuses the same SPIFFE ID from another CA at the handshake', async () => {
    const impostor = foreign.services.audit!;
    // Trusting the real mesh CA (to see the server) but holding a foreign-CA certificate.
    const result = await probeHealth({
      address,
      tls: { certFile: impostor.certFile, keyFile: impostor.keyFile, caFile: pki.caFile },
    });
    expect(result.serving).toBe(false);
    expect(result.status).toMatch(/^14 /);
  });

  it('leaves allowed peers as they were: every method', async () => {
    const inference = callAs(SecretClient, pki.services.inference!);
    try {
      expect(await read(inference)).toEqual({ code: 0, secret: 'only-for-peers' });
    } finally {
      inference.close();
    }
  });
});

describe('health-probe-main.ts (the container probe)', () => {
  const probe = (args: string[]) =>
    new Promise<{ code: number | null; stderr: string; stdout: string }>((resolve) => {
      const child = spawn(process.execPath, [MAIN, ...args], { stdio: 'pipe' });
      let stderr = '';
      let stdout = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.on('close', (code) => resolve({ code, stderr, stdout }));
    });

  it('exits 0 when serving, 1 when not, 2 on bad arguments; never prints the key', async () => {
    const args = ['--address', address, '--certs', pki.dir, '--name', 'audit'];
    expect((await probe(args)).code).toBe(0);
    server.health.setStatus('', 'NOT_SERVING');
    try {
      const down = await probe(args);
      expect(down.code).toBe(1);
      expect(down.stderr).toContain('NOT_SERVING');
    } finally {
      server.health.setStatus('', 'SERVING');
    }
    const wrongName = await probe(['--address', address, '--certs', pki.dir, '--name', 'policy']);
    expect(wrongName.code).toBe(1);
    const missing = await probe(['--address', address, '--certs', pki.dir, '--name', 'nobody']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nobody\.crt/);
    expect((await probe(['--name', 'audit'])).code).toBe(2);
    const key = readFileSync(audit.keyFile, 'utf8').split('\n')[1]!;
    expect(wrongName.stderr + missing.stderr).not.toContain(key);
  }, 30_000);
});
