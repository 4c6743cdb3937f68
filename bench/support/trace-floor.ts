/**
 * The floor of "mTLS + telemetry" for the foundation bench: the least per-call work any design
 * does that meets the foundation's rules (mutual TLS, a deadline on every client call, a
 * recorded span for every client and server call, W3C trace context in the metadata, the
 * handler run in its server span's context, a handled count and a latency histogram per
 * call), with nothing else.
 *
 * It is built to be cheaper than anything conforming, never to be used:
 * - mutual TLS is grpc-js's own, with no peer allow-list and no certificate reloading;
 * - no interceptor layer on either side: the handler and the call are wrapped directly;
 * - spans are recorded and then dropped: no exporter, no file, no batching;
 * - the trace context is read with a split, not the W3C propagator's checks;
 * - metrics are plain numbers, not a Prometheus registry.
 * So the floor keeps at least as much of plaintext's throughput as any conforming
 * mTLS+telemetry can. Spans come from the mesh's own span starter, the lightest this project
 * has (lighter than the OpenTelemetry SDK's `startSpan`).
 */
import {
  credentials,
  Metadata,
  ServerCredentials,
  type ChannelCredentials,
  type handleUnaryCall,
  type sendUnaryData,
  type ServerUnaryCall,
} from '@grpc/grpc-js';
import {
  context,
  ROOT_CONTEXT,
  SpanKind,
  trace,
  TraceFlags,
  type Attributes,
  type Context,
} from '@opentelemetry/api';
import { BasicTracerProvider, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ensureContextManager } from '../../mesh/telemetry/context-manager.ts';
import { splitMethodPath } from '../../mesh/telemetry/grpc-names.ts';
import { createRpcSpanStarter, type RpcSpanStarter } from '../../mesh/telemetry/rpc-span.ts';

/** Receives every ended span and keeps none (no exporter is cheaper). */
const DROP: SpanProcessor = {
  onStart: () => {},
  onEnd: () => {},
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
};

/** A span starter whose spans are always recorded and, by default, never exported. */
function floorSpans(processor: SpanProcessor): RpcSpanStarter {
  ensureContextManager();
  const provider = new BasicTracerProvider({ spanProcessors: [processor] });
  return createRpcSpanStarter(provider.getTracer('floor'));
}

/** A method's span name and attributes, as the mesh's interceptors make them. */
function methodSpan(path: string): { name: string; attributes: Attributes } {
  const { service, method } = splitMethodPath(path);
  return {
    name: `${service}/${method}`,
    attributes: Object.freeze({
      'rpc.system': 'grpc',
      'rpc.service': service,
      'rpc.method': method,
    }),
  };
}

/** `traceparent` → a parent context (version 00 only; anything else starts a new trace). */
function parentOf(metadata: Metadata): Context {
  const header = metadata.get('traceparent')[0];
  if (typeof header !== 'string' || header.length !== 55) return ROOT_CONTEXT;
  const [version, traceId, spanId, flags] = header.split('-');
  if (version !== '00' || !traceId || !spanId || !flags) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId,
    spanId,
    traceFlags: flags === '01' ? TraceFlags.SAMPLED : TraceFlags.NONE,
    isRemote: true,
  });
}

/** The floor's per-call server metrics: a handled count and a latency histogram. */
export interface FloorMetrics {
  handled: number;
  buckets: Float64Array;
  sum: number;
}

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Wraps a unary handler with the floor's server side: a SERVER span from the caller's trace
 * context, the handler run in it, the span ended and the call counted and timed on the answer.
 */
export function floorHandler<Req, Res>(
  path: string,
  handler: handleUnaryCall<Req, Res>,
  /** Where ended spans go (tests look at them). Default: dropped. */
  processor: SpanProcessor = DROP,
): { handler: handleUnaryCall<Req, Res>; metrics: FloorMetrics } {
  const startSpan = floorSpans(processor);
  const { name, attributes } = methodSpan(path);
  const metrics: FloorMetrics = { handled: 0, buckets: new Float64Array(BUCKETS.length), sum: 0 };
  const wrapped: handleUnaryCall<Req, Res> = (call: ServerUnaryCall<Req, Res>, callback) => {
    const startedAt = performance.now();
    const parent = parentOf(call.metadata);
    const span = startSpan(name, SpanKind.SERVER, attributes, parent);
    const done: sendUnaryData<Res> = (err, value, trailer, flags) => {
      span.end();
      const seconds = (performance.now() - startedAt) / 1000;
      metrics.handled += 1;
      metrics.sum += seconds;
      for (let i = 0; i < BUCKETS.length; i += 1)
        if (seconds <= BUCKETS[i]!) metrics.buckets[i]! += 1;
      callback(err, value, trailer, flags);
    };
    context.with(trace.setSpan(parent, span), handler, undefined, call, done);
  };
  return { handler: wrapped, metrics };
}

/** grpc-js's own server credentials for mutual TLS (client certificates required). */
export function floorServerCredentials(ca: Buffer, cert: Buffer, key: Buffer): ServerCredentials {
  return ServerCredentials.createSsl(ca, [{ cert_chain: cert, private_key: key }], true);
}

/** grpc-js's own client credentials for mutual TLS (the chain is checked, not the host name). */
export function floorClientCredentials(ca: Buffer, key: Buffer, cert: Buffer): ChannelCredentials {
  return credentials.createSsl(ca, key, cert, { checkServerIdentity: () => undefined });
}

/** A unary client method as generated code offers it: request, metadata, options, callback. */
type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: { deadline: number },
  callback: (err: Error | null, value?: Res) => void,
) => unknown;

/**
 * The floor's client side of one method: a CLIENT span per call, its trace context in new
 * metadata, a deadline, and the span ended when the answer comes.
 */
export function floorCall<Req, Res>(
  path: string,
  method: UnaryMethod<Req, Res>,
  deadlineMs = 10_000,
  /** Where ended spans go (tests look at them). Default: dropped. */
  processor: SpanProcessor = DROP,
): (request: Req) => Promise<Res | undefined> {
  const startSpan = floorSpans(processor);
  const { name, attributes } = methodSpan(path);
  return (request) =>
    new Promise((resolve, reject) => {
      const span = startSpan(name, SpanKind.CLIENT, attributes, ROOT_CONTEXT);
      const { traceId, spanId } = span.spanContext();
      const metadata = new Metadata();
      metadata.set('traceparent', `00-${traceId}-${spanId}-01`);
      method(request, metadata, { deadline: Date.now() + deadlineMs }, (err, value) => {
        span.end();
        if (err) reject(err);
        else resolve(value);
      });
    });
}
