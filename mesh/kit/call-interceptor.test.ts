import {
  makeGenericClientConstructor,
  Metadata,
  status,
  type Client,
  type ServerUnaryCall,
  type ServiceError,
} from '@grpc/grpc-js';
import { SpanKind } from '@opentelemetry/api';
import { createTestPki, type TestPki } from '../ca/index.ts';
import { createLogger, createTelemetry, type Telemetry } from '../telemetry/index.ts';
import { createMeshClient, createMeshServer, peerIdentity, unaryHandler } from './index.ts';
import type { MeshServer } from './server.ts';
import { jsonUnaryMethod } from './testing.ts';

// The mesh server folds the telemetry interceptor into its own single interceptor: these tests
// check that the folded path keeps every effect of the stacked one.
type Msg = { text: string };
const Service = {
  echo: jsonUnaryMethod('/bulwark.test.v1.FoldService/Echo'),
} as const;
const EchoClient = makeGenericClientConstructor(Service, 'FoldService');

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki({ services: ['audit', 'inference', 'policy'] });
});
afterAll(() => pki.cleanup());

const files = (name: string) => ({
  certFile: pki.services[name]!.certFile,
  keyFile: pki.services[name]!.keyFile,
  caFile: pki.caFile,
});

function echo(client: Client, text: string): Promise<{ reply?: Msg; err?: ServiceError }> {
  return new Promise((resolve) => {
    (client as unknown as Record<string, CallableFunction>)['echo']!(
      { text },
      new Metadata(),
      (err: ServiceError | null, reply: Msg) => resolve(err ? { err } : { reply }),
    );
  });
}

describe('mesh server with telemetry folded into its interceptor', () => {
  let server: MeshServer;
  let serverTelemetry: Telemetry;
  let clientTelemetry: Telemetry;
  const lines: Record<string, unknown>[] = [];
  const seen: { spiffeId?: string; deadline: number; traceId?: unknown }[] = [];

  beforeAll(async () => {
    serverTelemetry = createTelemetry({
      serviceName: 'audit',
      memoryExporter: true,
      processMetrics: false,
      env: {},
    });
    clientTelemetry = createTelemetry({
      serviceName: 'inference',
      memoryExporter: true,
      processMetrics: false,
      env: {},
    });
    const logger = createLogger({
      service: 'audit',
      destination: { write: (line: string) => lines.push(JSON.parse(line)) },
    });
    server = createMeshServer({
      tls: files('audit'),
      allowedPeers: [pki.services['inference']!.spiffeId],
      logger,
      interceptors: [serverTelemetry.serverInterceptor],
    });
    server.addService(Service, {
      echo: unaryHandler(async (call: ServerUnaryCall<Msg, Msg>) => {
        await new Promise((resolve) => setImmediate(resolve));
        logger.info('handling');
        seen.push({
          spiffeId: peerIdentity(call).spiffeId,
          deadline: new Date(call.getDeadline()).getTime(),
        });
        return { text: call.request.text };
      }),
    });
  });
  afterAll(async () => {
    await serverTelemetry.shutdown();
    await clientTelemetry.shutdown();
  });

  it('traces, counts and identifies allowed calls, and refuses strangers in their trace', async () => {
    const { address } = await server.listen();
    const client = createMeshClient(EchoClient, {
      address,
      tls: files('inference'),
      expectedServer: pki.services['audit']!.spiffeId,
      logger: createLogger({ service: 'inference', level: 'silent' }),
      interceptors: [clientTelemetry.clientInterceptor],
    });
    const stranger = createMeshClient(EchoClient, {
      address,
      tls: files('policy'),
      expectedServer: pki.services['audit']!.spiffeId,
      logger: createLogger({ service: 'policy', level: 'silent' }),
    });
    try {
      expect((await echo(client, 'hi')).reply).toEqual({ text: 'hi' });
      expect((await echo(stranger, 'let me in')).err?.code).toBe(status.UNAUTHENTICATED);
    } finally {
      client.close();
      stranger.close();
    }

    // The kit's identity and the default deadline reached the handler through the one layer.
    expect(seen).toHaveLength(1);
    expect(seen[0]!.spiffeId).toBe(pki.services['inference']!.spiffeId);
    expect(seen[0]!.deadline).toBeGreaterThan(Date.now());

    const [clientSpan] = clientTelemetry.memoryExporter!.getFinishedSpans();
    const serverSpans = serverTelemetry.memoryExporter!.getFinishedSpans();
    expect(serverSpans.map((s) => s.attributes['rpc.grpc.status_code'])).toEqual([
      status.OK,
      status.UNAUTHENTICATED,
    ]);
    const [allowed, refused] = serverSpans;
    expect(allowed!.kind).toBe(SpanKind.SERVER);
    expect(allowed!.spanContext().traceId).toBe(clientSpan!.spanContext().traceId);
    expect(allowed!.parentSpanContext?.spanId).toBe(clientSpan!.spanContext().spanId);
    expect(allowed!.attributes['network.peer.address']).toBe('127.0.0.1');

    // The handler's log line and the refusal's both carry their call's trace.
    const handling = lines.find((line) => line['msg'] === 'handling');
    expect(handling?.['trace_id']).toBe(allowed!.spanContext().traceId);
    const refusal = lines.find((line) => line['event'] === 'mesh.peer.refused');
    expect(refusal?.['trace_id']).toBe(refused!.spanContext().traceId);

    const handled = await serverTelemetry.grpcMetrics.handled.get();
    expect(Object.fromEntries(handled.values.map((v) => [v.labels['grpc_code'], v.value]))).toEqual(
      { OK: 1, Unauthenticated: 1 },
    );

    // Every call left the in-flight count, so shutdown does not sit out its grace period.
    // (Hang detection, not a speed target: the bound is far above any normal drain.)
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      server.shutdown(120_000).then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), 20_000);
      }),
    ]);
    clearTimeout(timer);
    expect(drained).toBe(true);
  });
});
