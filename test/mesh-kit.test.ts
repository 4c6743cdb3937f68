import {
  InterceptingCall,
  Metadata,
  ResponderBuilder,
  ServerInterceptingCall,
  credentials,
  makeGenericClientConstructor,
  status,
  type Client,
  type Interceptor,
  type ServerInterceptor,
  type ServerUnaryCall,
  type ServiceError,
} from '@grpc/grpc-js';
import { pino } from 'pino';
import { HealthClient } from '../gen/grpc/health/v1/health.ts';
import { certificateThumbprint, createTestPki, type TestPki } from '../mesh/ca/index.ts';
import {
  MeshError,
  createMeshClient,
  createMeshServer,
  peerIdentity,
  unaryHandler,
  type MeshServer,
  type PeerIdentity,
} from '../mesh/kit/index.ts';
import { jsonUnaryMethod } from '../mesh/kit/testing.ts';

// A JSON echo service: enough to exercise the kit without a generated proto.
type EchoRequest = { text: string; delayMs?: number; fail?: 'mesh' | 'crash' };
type EchoResponse = { text: string; peer: PeerIdentity };
const EchoService = {
  echo: jsonUnaryMethod('/bulwark.test.v1.EchoService/Echo'),
} as const;
interface EchoClient extends Client {
  echo(
    request: EchoRequest,
    metadata: Metadata,
    options: { deadline?: number },
    callback: (err: ServiceError | null, response: EchoResponse) => void,
  ): void;
}
const EchoClient = makeGenericClientConstructor(EchoService, 'EchoService') as unknown as new (
  ...args: ConstructorParameters<ReturnType<typeof makeGenericClientConstructor>>
) => EchoClient;

const silent = pino({ level: 'silent' });
// Resolvers for tests that must wait until a handler is really running.
const started = new Map<string, () => void>();
const handlerStarted = (text: string) =>
  new Promise<void>((resolve) => {
    started.set(text, resolve);
  });
const echoImpl = {
  echo: unaryHandler(
    async (call: ServerUnaryCall<EchoRequest, EchoResponse>) => {
      started.get(call.request.text)?.();
      if (call.request.delayMs) {
        // Stop waiting when the call is cancelled so no timer outlives a test.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, call.request.delayMs);
          call.on('cancelled', () => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      if (call.request.fail === 'mesh') {
        throw new MeshError('ERR_MESH_INVALID_OPTION', 'bad echo', { cause: new Error('hidden') });
      }
      if (call.request.fail === 'crash') throw new Error('database password is hunter2');
      return { text: call.request.text, peer: peerIdentity(call) };
    },
    { logger: silent },
  ),
};

function echo(client: EchoClient, request: EchoRequest, deadline?: number) {
  return new Promise<{ err: ServiceError | null; res?: EchoResponse }>((resolve) => {
    client.echo(request, new Metadata(), deadline ? { deadline } : {}, (err, res) =>
      resolve({ err, res }),
    );
  });
}

let pki: TestPki;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  pki = await createTestPki({
    services: ['audit', 'inference'],
    clients: [{ org: 'acme', name: 'scorer' }],
  });
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await pki.cleanup();
});

async function startAudit(options: Partial<Parameters<typeof createMeshServer>[0]> = {}) {
  const server: MeshServer = createMeshServer({
    tls: pki.services.audit!,
    allowedPeers: [pki.services.inference!.spiffeId],
    logger: silent,
    ...options,
  });
  server.addService(EchoService, echoImpl);
  const { address } = await server.listen();
  cleanups.push(() => server.shutdown(1000));
  return { server, address };
}

function meshClient<C extends Client>(
  Ctor: new (...args: never[]) => C,
  address: string,
  extra: Partial<Parameters<typeof createMeshClient>[1]> = {},
): C {
  const client = createMeshClient(Ctor as never, {
    address,
    tls: pki.services.inference!,
    expectedServer: pki.services.audit!.spiffeId,
    logger: silent,
    ...extra,
  }) as C;
  cleanups.push(() => client.close());
  return client;
}

describe('mesh kit', () => {
  it('reports the caller SPIFFE ID, RFC 8705 thumbprint and address to the handler', async () => {
    const { address } = await startAudit();
    const { err, res } = await echo(meshClient(EchoClient, address), { text: 'hi' });
    expect(err).toBeNull();
    expect(res?.text).toBe('hi');
    expect(res?.peer.spiffeId).toBe(pki.services.inference!.spiffeId);
    expect(res?.peer.certificateThumbprint).toBe(
      certificateThumbprint(pki.services.inference!.certPem),
    );
    expect(res?.peer.certificateThumbprint).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(res?.peer.address).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('with an optional client certificate, lets TLS-only callers in without an identity', async () => {
    const { address } = await startAudit({
      clientCertificate: 'optional',
      allowedPeers: ['spiffe://bulwark.local/partner/*'],
    });
    const tlsOnly = new EchoClient(address, credentials.createSsl(Buffer.from(pki.caPem)));
    cleanups.push(() => tlsOnly.close());
    const anonymous = await echo(tlsOnly, { text: 'anon' });
    expect(anonymous.err).toBeNull();
    expect(anonymous.res?.peer.spiffeId).toBeUndefined();
    expect(anonymous.res?.peer.certificateThumbprint).toBeUndefined();

    const partner = pki.clients['acme/scorer']!;
    const withCert = meshClient(EchoClient, address, { tls: partner });
    const bound = await echo(withCert, { text: 'partner' });
    expect(bound.res?.peer.spiffeId).toBe('spiffe://bulwark.local/partner/acme/scorer');
    expect(bound.res?.peer.certificateThumbprint).toBe(certificateThumbprint(partner.certPem));

    // A presented certificate must still be allowed: svc/inference is not a partner.
    const service = await echo(meshClient(EchoClient, address), { text: 'svc' });
    expect(service.err?.code).toBe(status.UNAUTHENTICATED);
  });

  it('maps handler errors to safe statuses without leaking causes', async () => {
    const { address } = await startAudit();
    const client = meshClient(EchoClient, address);
    const domain = await echo(client, { text: '', fail: 'mesh' });
    expect(domain.err?.code).toBe(status.INVALID_ARGUMENT);
    expect(domain.err?.details).toBe('bad echo');
    expect(domain.err?.metadata.get('bulwark-error-code')).toEqual(['ERR_MESH_INVALID_OPTION']);
    const crash = await echo(client, { text: '', fail: 'crash' });
    expect(crash.err?.code).toBe(status.INTERNAL);
    expect(crash.err?.details).toBe('internal error');
    expect(JSON.stringify(crash.err)).not.toContain('hunter2');
  });

  it('gives every client call a default deadline', async () => {
    const { address } = await startAudit();
    const client = meshClient(EchoClient, address, { defaultDeadlineMs: 150 });
    const slow = await echo(client, { text: 'slow', delayMs: 2000 });
    expect(slow.err?.code).toBe(status.DEADLINE_EXCEEDED);
    // An explicit deadline wins over the default.
    const patient = await echo(client, { text: 'ok', delayMs: 300 }, Date.now() + 5000);
    expect(patient.err).toBeNull();
  });

  it('serves grpc.health.v1 Check and Watch with statuses the service sets', async () => {
    const { server, address } = await startAudit();
    const health = meshClient(HealthClient, address);
    const check = (service: string) =>
      new Promise<ServiceError | number>((resolve) =>
        health.check({ service }, (err, res) => resolve(err ?? res.status)),
      );
    expect(await check('')).toBe(1);
    expect(await check('bulwark.test.v1.EchoService')).toBe(1);
    expect(((await check('no.such.Service')) as ServiceError).code).toBe(status.NOT_FOUND);

    const seen: number[] = [];
    const stream = health.watch({ service: 'bulwark.test.v1.EchoService' });
    stream.on('error', () => {});
    let first: () => void = () => {};
    const firstUpdate = new Promise<void>((resolve) => {
      first = resolve;
    });
    const twoUpdates = new Promise<void>((resolve) =>
      stream.on('data', (msg: { status: number }) => {
        seen.push(msg.status);
        if (seen.length === 1) first();
        if (seen.length === 2) resolve();
      }),
    );
    // Change the status only once the watch is registered and has reported the current one.
    await firstUpdate;
    server.health.setStatus('bulwark.test.v1.EchoService', 'NOT_SERVING');
    await twoUpdates;
    expect(seen).toEqual([1, 2]);
    expect(await check('bulwark.test.v1.EchoService')).toBe(2);
    stream.cancel();
  });

  it('drains in-flight calls on shutdown, then refuses new ones', async () => {
    const { server, address } = await startAudit();
    const client = meshClient(EchoClient, address);
    await echo(client, { text: 'warm-up' });
    const running = handlerStarted('slow');
    const inFlight = echo(client, { text: 'slow', delayMs: 300 });
    await running;
    await server.shutdown(5000);
    const done = await inFlight;
    expect(done.err).toBeNull();
    expect(done.res?.text).toBe('slow');
    const late = await echo(meshClient(EchoClient, address), { text: 'late' }, Date.now() + 2000);
    expect(late.err?.code).toBe(status.UNAVAILABLE);
  });

  it('cancels calls still running when the grace period ends', async () => {
    const lines: { msg: string }[] = [];
    const logger = pino({}, { write: (line: string) => lines.push(JSON.parse(line)) });
    const { server, address } = await startAudit({ logger });
    const client = meshClient(EchoClient, address);
    const running = handlerStarted('stuck');
    const stuck = echo(client, { text: 'stuck', delayMs: 30_000 });
    await running;
    await server.shutdown(100);
    expect((await stuck).err?.code).toBeDefined();
    expect(lines.map((l) => l.msg)).toContain('grace period over: cancelling remaining calls');
  });

  it('runs extra client and server interceptors, and server ones see refusals', async () => {
    const serverSeen: number[] = [];
    const recordStatus: ServerInterceptor = (_method, call) =>
      new ServerInterceptingCall(
        call,
        new ResponderBuilder()
          .withSendStatus((st, next) => {
            serverSeen.push(st.code);
            next(st);
          })
          .build(),
      );
    const clientSeen: string[] = [];
    const tagDeadline: Interceptor = (options, nextCall) => {
      clientSeen.push(options.deadline ? 'deadline' : 'none');
      return new InterceptingCall(nextCall(options));
    };
    const { address } = await startAudit({ interceptors: [recordStatus] });
    await echo(meshClient(EchoClient, address, { interceptors: [tagDeadline] }), { text: 'a' });
    expect(clientSeen).toEqual(['deadline']);
    const stranger = meshClient(EchoClient, address, { tls: pki.services.audit! });
    expect((await echo(stranger, { text: 'b' })).err?.code).toBe(status.UNAUTHENTICATED);
    expect(serverSeen).toEqual([status.OK, status.UNAUTHENTICATED]);
  });
});
