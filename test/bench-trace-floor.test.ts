import { Metadata, Server, type ServiceError } from '@grpc/grpc-js';
import { context, trace } from '@opentelemetry/api';
import {
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import {
  EchoServiceClient,
  EchoServiceService,
  type EchoRequest,
  type EchoResponse,
} from '../gen/bulwark/echo/v1/echo.ts';
import {
  floorCall,
  floorClientCredentials,
  floorHandler,
  floorServerCredentials,
} from '../bench/support/trace-floor.ts';
import { createTestPki, type TestPki } from '../mesh/ca/testing.ts';
import { MESH_GRPC_OPTIONS } from '../mesh/kit/index.ts';

// The foundation bench's floor is the basis of a claim about what any design can reach: it must
// really do the work it stands for (mutual TLS, a deadline, a recorded span on each side in one
// trace, the handler in its span's context, the call counted).
// TLS may not name a server by its IP address.
const LOOPBACK_OPTIONS = { ...MESH_GRPC_OPTIONS, 'grpc.ssl_target_name_override': 'localhost' };
let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki({ services: ['server', 'client'] });
});
afterAll(async () => {
  await pki.cleanup();
});

function memory(): { exporter: InMemorySpanExporter; processor: SpanProcessor } {
  const exporter = new InMemorySpanExporter();
  return { exporter, processor: new SimpleSpanProcessor(exporter) };
}

it('records a span on each side in one trace, over mutual TLS, with a deadline', async () => {
  const serverSpans = memory();
  const clientSpans = memory();
  const seen: Array<{ deadline: number; traceId: string | undefined }> = [];
  const { handler, metrics } = floorHandler<EchoRequest, EchoResponse>(
    EchoServiceService.echo.path,
    (call, callback) => {
      seen.push({
        deadline: Number(call.getDeadline()),
        traceId: trace.getSpan(context.active())?.spanContext().traceId,
      });
      callback(null, { message: call.request.message, servers: [] });
    },
    serverSpans.processor,
  );
  const server = new Server(MESH_GRPC_OPTIONS);
  server.addService(EchoServiceService, { echo: handler });
  const { certFile, keyFile } = pki.services['server']!;
  const { readFileSync } = await import('node:fs');
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      '127.0.0.1:0',
      floorServerCredentials(
        readFileSync(pki.caFile),
        readFileSync(certFile),
        readFileSync(keyFile),
      ),
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
  const client = pki.services['client']!;
  const echo = new EchoServiceClient(
    `127.0.0.1:${port}`,
    floorClientCredentials(
      readFileSync(pki.caFile),
      readFileSync(client.keyFile),
      readFileSync(client.certFile),
    ),
    LOOPBACK_OPTIONS,
  );
  try {
    const before = Date.now();
    const answer = await floorCall(
      EchoServiceService.echo.path,
      echo.echo.bind(echo),
      10_000,
      clientSpans.processor,
    )({ message: 'hi', forwardTo: '' });
    expect(answer?.message).toBe('hi');
    const [clientSpan] = clientSpans.exporter.getFinishedSpans();
    const [serverSpan] = serverSpans.exporter.getFinishedSpans();
    expect(clientSpan?.name).toBe('bulwark.echo.v1.EchoService/Echo');
    expect(serverSpan?.spanContext().traceId).toBe(clientSpan?.spanContext().traceId);
    expect(serverSpan?.parentSpanContext?.spanId).toBe(clientSpan?.spanContext().spanId);
    expect(seen[0]?.traceId).toBe(clientSpan?.spanContext().traceId);
    expect(seen[0]!.deadline).toBeGreaterThanOrEqual(before + 9_000);
    expect(seen[0]!.deadline).toBeLessThanOrEqual(Date.now() + 10_000);
    expect(metrics.handled).toBe(1);
    expect(metrics.buckets[metrics.buckets.length - 1]).toBe(1);

    // Mutual TLS: a client without a certificate is refused.
    const { credentials } = await import('@grpc/grpc-js');
    const anonymous = new EchoServiceClient(
      `127.0.0.1:${port}`,
      credentials.createSsl(readFileSync(pki.caFile), null, null, {
        checkServerIdentity: () => undefined,
      }),
      LOOPBACK_OPTIONS,
    );
    const refused = await new Promise<ServiceError | null>((resolve) =>
      anonymous.echo(
        { message: 'x', forwardTo: '' },
        new Metadata(),
        { deadline: Date.now() + 5_000 },
        (err: ServiceError | null) => resolve(err),
      ),
    );
    anonymous.close();
    expect(refused).not.toBeNull();
    expect(metrics.handled).toBe(1);
  } finally {
    echo.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  }
});
