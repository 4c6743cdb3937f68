import {
  makeGenericClientConstructor,
  Metadata,
  status,
  type Client,
  type MethodDefinition,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import { createTestPki, type TestPki } from '../ca/index.ts';
import { createLogger, createTelemetry, type Telemetry } from '../telemetry/index.ts';
import { createMeshClient, createMeshServer, type MeshClientOptions } from './index.ts';
import type { MeshServer } from './server.ts';
import { jsonUnaryMethod } from './testing.ts';

// A mesh client given the telemetry interceptor runs unary calls with no grpc-js interceptor
// layer: these tests check that the call still carries its trace context and deadline, that
// the caller's metadata and context are left alone, and that streaming calls are still traced.
type Msg = { text: string; wait?: boolean };
const serialize = (value: unknown) => Buffer.from(JSON.stringify(value ?? {}));
const deserialize = (bytes: Buffer): unknown => JSON.parse(bytes.toString('utf8') || '{}');
const Service = {
  echo: jsonUnaryMethod<Msg, Msg>('/bulwark.test.v1.ObservedService/Echo'),
  deny: jsonUnaryMethod<Msg, Msg>('/bulwark.test.v1.ObservedService/Deny'),
  repeat: {
    path: '/bulwark.test.v1.ObservedService/Repeat',
    requestStream: false,
    responseStream: true,
    requestSerialize: serialize,
    requestDeserialize: deserialize,
    responseSerialize: serialize,
    responseDeserialize: deserialize,
  } as MethodDefinition<Msg, Msg>,
} as const;
const ObservedClient = makeGenericClientConstructor(Service, 'ObservedService');
type Calls = Record<string, CallableFunction>;

let pki: TestPki;
let server: MeshServer;
let address: string;
let telemetry: Telemetry;
/** What the server saw of each call. */
const seen: { metadata: Metadata; deadline: number }[] = [];

beforeAll(async () => {
  pki = await createTestPki({ services: ['audit', 'inference'] });
  telemetry = createTelemetry({
    serviceName: 'inference',
    memoryExporter: true,
    processMetrics: false,
    env: {},
  });
  server = createMeshServer({
    tls: files('audit'),
    allowedPeers: [pki.services['inference']!.spiffeId],
    logger: createLogger({ service: 'audit', level: 'silent' }),
  });
  const record = (call: ServerUnaryCall<Msg, Msg> | ServerWritableStream<Msg, Msg>) =>
    seen.push({ metadata: call.metadata, deadline: new Date(call.getDeadline()).getTime() });
  server.addService(Service, {
    echo: (call: ServerUnaryCall<Msg, Msg>, cb: sendUnaryData<Msg>) => {
      record(call);
      // A call that asks to wait is answered only by its deadline.
      if (!call.request.wait) cb(null, { text: call.request.text });
    },
    deny: (call: ServerUnaryCall<Msg, Msg>, cb: sendUnaryData<Msg>) => {
      record(call);
      cb({ code: status.PERMISSION_DENIED, details: 'not for you' });
    },
    repeat: (call: ServerWritableStream<Msg, Msg>) => {
      record(call);
      call.write({ text: call.request.text });
      call.write({ text: call.request.text });
      call.end();
    },
  });
  ({ address } = await server.listen());
});
afterAll(async () => {
  await server.shutdown(1000);
  await telemetry.shutdown();
  await pki.cleanup();
});
beforeEach(() => {
  seen.length = 0;
  telemetry.memoryExporter!.reset();
});

function files(name: string) {
  return {
    certFile: pki.services[name]!.certFile,
    keyFile: pki.services[name]!.keyFile,
    caFile: pki.caFile,
  };
}

function client(extra: Partial<MeshClientOptions> = {}): Client {
  return createMeshClient(ObservedClient, {
    address,
    tls: files('inference'),
    expectedServer: pki.services['audit']!.spiffeId,
    logger: createLogger({ service: 'inference', level: 'silent' }),
    interceptors: [telemetry.clientInterceptor],
    ...extra,
  });
}

function unary(
  c: Client,
  method: 'echo' | 'deny',
  ...args: unknown[]
): Promise<{ reply?: Msg; err?: ServiceError }> {
  return new Promise((resolve) =>
    (c as unknown as Calls)[method]!(...args, (err: ServiceError | null, reply: Msg) =>
      resolve(err ? { err } : { reply }),
    ),
  );
}

describe('mesh client: unary calls traced without an interceptor layer', () => {
  it('sends the span as trace context on a copy of the caller metadata', async () => {
    const c = client();
    try {
      const own = new Metadata();
      own.set('x-request-note', 'kept');
      expect((await unary(c, 'echo', { text: 'hi' }, own)).reply).toEqual({ text: 'hi' });
      // The caller's object is not written to: callers may share one between calls.
      expect(own.get('traceparent')).toEqual([]);
      const [span] = telemetry.memoryExporter!.getFinishedSpans();
      expect(span!.name).toBe('bulwark.test.v1.ObservedService/Echo');
      expect(span!.attributes['rpc.grpc.status_code']).toBe(status.OK);
      const sent = seen[0]!.metadata;
      expect(sent.get('x-request-note')).toEqual(['kept']);
      const { traceId, spanId } = span!.spanContext();
      expect(sent.get('traceparent')).toEqual([`00-${traceId}-${spanId}-01`]);
    } finally {
      c.close();
    }
  });

  it('runs the callback in the caller context, under the caller span', async () => {
    const c = client();
    try {
      const tracer = telemetry.tracer;
      const outer = tracer.startSpan('caller');
      const inCallback = await context.with(
        trace.setSpan(context.active(), outer),
        () =>
          new Promise<unknown>((resolve) =>
            (c as unknown as Calls)['echo']!({ text: 'x' }, () => resolve(trace.getActiveSpan())),
          ),
      );
      outer.end();
      expect(inCallback).toBe(outer);
      const call = telemetry
        .memoryExporter!.getFinishedSpans()
        .find((s) => s.name.endsWith('/Echo'));
      expect(call!.parentSpanContext?.spanId).toBe(outer.spanContext().spanId);
      expect(call!.spanContext().traceId).toBe(outer.spanContext().traceId);
    } finally {
      c.close();
    }
  });

  it('records a refused call as an error span, and the caller gets the status', async () => {
    const c = client();
    try {
      const { err } = await unary(c, 'deny', { text: 'x' }, new Metadata(), {});
      expect(err?.code).toBe(status.PERMISSION_DENIED);
      expect(err?.details).toBe('not for you');
      const [span] = telemetry.memoryExporter!.getFinishedSpans();
      expect(span!.attributes['rpc.grpc.status_code']).toBe(status.PERMISSION_DENIED);
      expect(span!.status).toEqual({
        code: SpanStatusCode.ERROR,
        message: 'PermissionDenied: not for you',
      });
    } finally {
      c.close();
    }
  });

  it('gives a call without a deadline the default one, and keeps a deadline the caller set', async () => {
    const c = client({ defaultDeadlineMs: 300 });
    try {
      // A server that never answers cannot hold the call past the default deadline.
      const { err } = await unary(c, 'echo', { text: 'x', wait: true });
      expect(err?.code).toBe(status.DEADLINE_EXCEEDED);
      const [span] = telemetry.memoryExporter!.getFinishedSpans();
      expect(span!.attributes['rpc.grpc.status_code']).toBe(status.DEADLINE_EXCEEDED);

      const callerDeadline = Date.now() + 60_000;
      await unary(c, 'echo', { text: 'y' }, new Metadata(), { deadline: callerDeadline });
      // grpc-timeout travels with millisecond precision or coarser.
      expect(Math.abs(seen[1]!.deadline - callerDeadline)).toBeLessThan(1000);
    } finally {
      c.close();
    }
  });

  it('also sets the deadline without telemetry', async () => {
    const c = client({ defaultDeadlineMs: 300, interceptors: [] });
    try {
      expect((await unary(c, 'echo', { text: 'x', wait: true })).err?.code).toBe(
        status.DEADLINE_EXCEEDED,
      );
      expect(telemetry.memoryExporter!.getFinishedSpans()).toHaveLength(0);
    } finally {
      c.close();
    }
  });

  it('leaves arguments grpc-js does not accept to grpc-js to refuse', () => {
    const c = client();
    try {
      expect(() => (c as unknown as Calls)['echo']!({ text: 'x' }, 'not metadata', 5)).toThrow(
        /Incorrect arguments/,
      );
    } finally {
      c.close();
    }
  });
});

describe('mesh client: streaming calls', () => {
  it('are traced and get the default deadline through the interceptor', async () => {
    const c = client({ defaultDeadlineMs: 30_000 });
    try {
      const replies: Msg[] = [];
      await new Promise<void>((resolve, reject) => {
        const stream = (c as unknown as Calls)['repeat']!({ text: 'r' }) as NodeJS.EventEmitter;
        stream.on('data', (m: Msg) => replies.push(m));
        stream.on('error', reject);
        stream.on('status', () => resolve());
      });
      expect(replies).toEqual([{ text: 'r' }, { text: 'r' }]);
      const [span] = telemetry.memoryExporter!.getFinishedSpans();
      expect(span!.name).toBe('bulwark.test.v1.ObservedService/Repeat');
      const { traceId, spanId } = span!.spanContext();
      expect(seen[0]!.metadata.get('traceparent')).toEqual([`00-${traceId}-${spanId}-01`]);
      expect(seen[0]!.deadline).toBeGreaterThan(Date.now() + 20_000);
    } finally {
      c.close();
    }
  });
});
