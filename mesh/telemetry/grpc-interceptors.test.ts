import {
  credentials,
  Metadata,
  Server,
  ServerCredentials,
  status,
  makeGenericClientConstructor,
  type Client,
  type ServiceDefinition,
  type ServiceError,
  type UntypedServiceImplementation,
  type sendUnaryData,
  type ServerUnaryCall,
} from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { createLogger } from './logger.ts';
import { createTelemetry, type Telemetry } from './telemetry.ts';
import { jsonUnaryMethod } from '../kit/testing.ts';

// A JSON-encoded unary service: enough to exercise the interceptors without generated code.
interface Msg {
  text: string;
}
const definition: ServiceDefinition = {
  Echo: jsonUnaryMethod('/bulwark.test.v1.TestService/Echo'),
};
const TestClient = makeGenericClientConstructor(definition, 'TestService');
type Handler = (call: ServerUnaryCall<Msg, Msg>, callback: sendUnaryData<Msg>) => void;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startServer(telemetry: Telemetry, handler: Handler): Promise<string> {
  const server = new Server({ interceptors: [telemetry.serverInterceptor] });
  server.addService(definition, { Echo: handler } as UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  cleanups.push(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())));
  return `127.0.0.1:${port}`;
}

function connect(address: string, telemetry?: Telemetry): Client {
  const client = new TestClient(address, credentials.createInsecure(), {
    interceptors: telemetry ? [telemetry.clientInterceptor] : [],
  });
  cleanups.push(() => client.close());
  return client;
}

function echo(client: Client, text: string, metadata = new Metadata(), deadlineMs = 5000) {
  return new Promise<Msg>((resolve, reject) => {
    (client as unknown as Record<string, CallableFunction>)['Echo']!(
      { text },
      metadata,
      { deadline: Date.now() + deadlineMs },
      (err: ServiceError | null, reply: Msg) => (err ? reject(err) : resolve(reply)),
    );
  });
}

function newTelemetry(serviceName: string): Telemetry {
  const telemetry = createTelemetry({
    serviceName,
    memoryExporter: true,
    processMetrics: false,
    env: {},
  });
  cleanups.push(() => telemetry.shutdown());
  return telemetry;
}

function spans(telemetry: Telemetry): ReadableSpan[] {
  return telemetry.memoryExporter!.getFinishedSpans();
}

describe('gRPC interceptors', () => {
  it('links client, server and the handler’s own outgoing call into one trace', async () => {
    const caller = newTelemetry('caller');
    const a = newTelemetry('a');
    const b = newTelemetry('b');
    const lines: string[] = [];
    const logger = createLogger({ service: 'a', destination: { write: (l) => lines.push(l) } });
    const addressB = await startServer(b, (call, callback) =>
      callback(null, { text: `b(${call.request.text})` }),
    );
    const toB = connect(addressB, a);
    const addressA = await startServer(a, async (call, callback) => {
      // An await before the outgoing call: the context must survive it.
      await new Promise((resolve) => setTimeout(resolve, 5));
      logger.info('forwarding');
      const reply = await echo(toB, call.request.text);
      callback(null, { text: `a(${reply.text})` });
    });

    const reply = await echo(connect(addressA, caller), 'hi');
    expect(reply.text).toBe('a(b(hi))');

    const [clientSpan] = spans(caller);
    const [aClient, aServer] = [
      spans(a).find((s) => s.kind === SpanKind.CLIENT),
      spans(a).find((s) => s.kind === SpanKind.SERVER),
    ];
    const [bServer] = spans(b);
    expect(clientSpan && aClient && aServer && bServer).toBeTruthy();
    const traceId = clientSpan!.spanContext().traceId;
    for (const span of [aServer!, aClient!, bServer!]) {
      expect(span.spanContext().traceId).toBe(traceId);
    }
    expect(aServer!.parentSpanContext?.spanId).toBe(clientSpan!.spanContext().spanId);
    expect(aClient!.parentSpanContext?.spanId).toBe(aServer!.spanContext().spanId);
    expect(bServer!.parentSpanContext?.spanId).toBe(aClient!.spanContext().spanId);
    expect(clientSpan!.parentSpanContext).toBeUndefined();

    expect(aServer!.name).toBe('bulwark.test.v1.TestService/Echo');
    expect(aServer!.attributes).toMatchObject({
      'rpc.system': 'grpc',
      'rpc.service': 'bulwark.test.v1.TestService',
      'rpc.method': 'Echo',
      'rpc.grpc.status_code': 0,
      'network.peer.address': '127.0.0.1',
    });
    expect(clientSpan!.kind).toBe(SpanKind.CLIENT);
    expect(clientSpan!.attributes['rpc.grpc.status_code']).toBe(0);

    const logged = JSON.parse(lines[0]!) as Record<string, string>;
    expect(logged['trace_id']).toBe(traceId);
    expect(logged['span_id']).toBe(aServer!.spanContext().spanId);
  });

  it('continues a trace from a traceparent header sent by any W3C client', async () => {
    const server = newTelemetry('server');
    const address = await startServer(server, (call, callback) => callback(null, call.request));
    const metadata = new Metadata();
    metadata.set('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    await echo(connect(address), 'x', metadata);
    const [span] = spans(server);
    expect(span?.spanContext().traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(span?.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
  });

  it('starts a new trace when the traceparent header is malformed', async () => {
    const server = newTelemetry('server');
    const address = await startServer(server, (call, callback) => callback(null, call.request));
    const metadata = new Metadata();
    metadata.set('traceparent', '00-00000000000000000000000000000000-00f067aa0ba902b7-01');
    await echo(connect(address), 'x', metadata);
    const [span] = spans(server);
    expect(span?.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(span?.spanContext().traceId).not.toBe('00000000000000000000000000000000');
    expect(span?.parentSpanContext).toBeUndefined();
  });

  it('counts and times calls by status code and marks failed spans', async () => {
    const server = newTelemetry('server');
    const client = newTelemetry('client');
    const address = await startServer(server, (call, callback) => {
      if (call.request.text === 'deny') {
        callback({ code: status.PERMISSION_DENIED, details: 'not allowed' });
      } else if (call.request.text === 'crash') {
        callback({ code: status.INTERNAL, details: 'internal error' });
      } else {
        callback(null, call.request);
      }
    });
    const conn = connect(address, client);
    await echo(conn, 'ok');
    await echo(conn, 'ok');
    await expect(echo(conn, 'deny')).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    await expect(echo(conn, 'crash')).rejects.toMatchObject({ code: status.INTERNAL });

    const handled = await server.grpcMetrics.handled.get();
    const byCode = Object.fromEntries(
      handled.values.map((v) => [String(v.labels['grpc_code']), v.value]),
    );
    expect(byCode).toEqual({ OK: 2, PermissionDenied: 1, Internal: 1 });
    expect(handled.values[0]?.labels).toMatchObject({
      grpc_service: 'bulwark.test.v1.TestService',
      grpc_method: 'Echo',
      grpc_type: 'unary',
    });
    const seconds = await server.grpcMetrics.handlingSeconds.get();
    const count = seconds.values.find((v) => v.metricName === 'grpc_server_handling_seconds_count');
    expect(count?.value).toBe(4);

    const serverStatus = spans(server).map((s) => s.status.code);
    // A refused request is the caller's error, not the server's; an internal error is.
    expect(serverStatus).toEqual([
      SpanStatusCode.UNSET,
      SpanStatusCode.UNSET,
      SpanStatusCode.UNSET,
      SpanStatusCode.ERROR,
    ]);
    const clientStatus = spans(client).map((s) => s.status.code);
    expect(clientStatus.filter((c) => c === SpanStatusCode.ERROR)).toHaveLength(2);
  });

  it('ends the server span and counts calls the client abandoned at its deadline', async () => {
    const server = newTelemetry('server');
    const address = await startServer(server, () => {
      // Never answers.
    });
    await expect(echo(connect(address), 'slow', new Metadata(), 100)).rejects.toMatchObject({
      code: status.DEADLINE_EXCEEDED,
    });
    // The server learns of the cancellation asynchronously; give a loaded machine time.
    let handled = await server.grpcMetrics.handled.get();
    for (let i = 0; i < 100 && handled.values.length === 0; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      handled = await server.grpcMetrics.handled.get();
    }
    expect(handled.values.map((v) => v.labels['grpc_code'])).toEqual(['DeadlineExceeded']);
    expect(spans(server)).toHaveLength(1);
  });

  it('counts a call the client cancelled well before its deadline as Canceled', async () => {
    const server = newTelemetry('server');
    let started!: () => void;
    const handlerStarted = new Promise<void>((resolve) => (started = resolve));
    const address = await startServer(server, () => started());
    const client = connect(address) as unknown as Record<string, CallableFunction>;
    const call = client['Echo']!(
      { text: 'x' },
      new Metadata(),
      { deadline: Date.now() + 30_000 },
      () => {},
    ) as {
      cancel(): void;
    };
    await handlerStarted;
    call.cancel();
    let handled = await server.grpcMetrics.handled.get();
    for (let i = 0; i < 100 && handled.values.length === 0; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      handled = await server.grpcMetrics.handled.get();
    }
    expect(handled.values.map((v) => v.labels['grpc_code'])).toEqual(['Canceled']);
  });

  it('serves the counters at /metrics', async () => {
    const server = newTelemetry('server');
    const address = await startServer(server, (call, callback) => callback(null, call.request));
    await echo(connect(address), 'x');
    const metrics = await server.serveMetrics({ port: 0 });
    expect(metrics.port).toBeGreaterThan(0);
    const res = await fetch(metrics.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const body = await res.text();
    expect(body).toContain(
      'grpc_server_handled_total{grpc_service="bulwark.test.v1.TestService",grpc_method="Echo",grpc_type="unary",grpc_code="OK"} 1',
    );
    expect(body).toContain('grpc_server_handling_seconds_bucket');
    // A second server on the same port is refused with a clear error.
    await expect(server.serveMetrics({ port: metrics.port })).rejects.toMatchObject({
      code: 'ERR_TELEMETRY_METRICS_LISTEN',
    });
    const missing = await fetch(metrics.url.replace('/metrics', '/other'));
    expect(missing.status).toBe(404);
    const post = await fetch(metrics.url, { method: 'POST' });
    expect(post.status).toBe(405);
  });
});
