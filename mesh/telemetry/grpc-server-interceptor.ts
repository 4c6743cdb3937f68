import { performance } from 'node:perf_hooks';
import {
  Metadata,
  ServerInterceptingCall,
  status,
  type ServerInterceptor,
  type StatusObject,
} from '@grpc/grpc-js';
import {
  context,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type TextMapPropagator,
  type Tracer,
} from '@opentelemetry/api';
import {
  CALL_OBSERVER,
  type CallObservation,
  type CallObserver,
  type ObservedMethod,
} from '../kit/call-observer.ts';
import {
  grpcCodeName,
  grpcType,
  metadataGetter,
  parsePeer,
  splitMethodPath,
} from './grpc-names.ts';
import {
  counterChild,
  histogramChild,
  type CounterChild,
  type HistogramChild,
} from './metric-children.ts';
import { GRPC_HANDLING_BUCKETS, type GrpcServerMetrics } from './metrics.ts';
import { scrubSecrets } from './redact.ts';
import { createRpcSpanStarter } from './rpc-span.ts';

/** Options of {@link createServerInterceptor}. */
export interface ServerInterceptorOptions {
  tracer: Tracer;
  /** Reads `traceparent`/`tracestate` from the request metadata. */
  propagator: TextMapPropagator;
  /** When given, every call is counted and timed. */
  metrics?: GrpcServerMetrics;
}

const DEADLINE_SLACK_MS = 100;
const MAX_CACHED_PEERS = 1024;

// Server spans are errors only for codes that mean the server failed (OpenTelemetry RPC
// semantic conventions); a refused or invalid request is the caller's problem.
const SERVER_ERROR_CODES = new Set<number>([
  status.UNKNOWN,
  status.DEADLINE_EXCEEDED,
  status.UNIMPLEMENTED,
  status.INTERNAL,
  status.UNAVAILABLE,
  status.DATA_LOSS,
]);

/** What depends only on the method: names, attributes and metric series, made once. */
interface MethodInfo {
  spanName: string;
  service: string;
  method: string;
  labels: { grpc_service: string; grpc_method: string; grpc_type: string };
  /** Span attributes by peer string (a connection's calls share one). */
  attributes: Map<string, Attributes>;
  started: CounterChild | undefined;
  handled: Map<number, CounterChild>;
  seconds: HistogramChild | undefined;
}

/**
 * A grpc-js server interceptor that, for every call: extracts the W3C trace context from the
 * metadata, starts a SERVER span `<package.Service>/<Method>` with `rpc.*` attributes, runs
 * the handler inside that span's context (so the handler's own client calls become its
 * children and its logs carry the trace id), and on the status ends the span and feeds
 * `grpc_server_started_total`, `grpc_server_handled_total` and `grpc_server_handling_seconds`.
 *
 * Put it first in the server's `interceptors` so calls refused by later interceptors (peer
 * allow-list, auth) are traced and counted too. A mesh server (`createMeshServer`) does the same
 * work inside its own interceptor, through the observer this one carries.
 *
 * @example
 * ```ts
 * const server = new Server({ interceptors: [createServerInterceptor({ tracer, propagator })] });
 * ```
 */
export function createServerInterceptor(options: ServerInterceptorOptions): ServerInterceptor {
  const observer = createServerCallObserver(options);
  const interceptor: ServerInterceptor = (descriptor, call) => {
    let observation: CallObservation | undefined;
    // Metadata comes first; the fallback covers a status sent before it (a bad request).
    const observe = (metadata?: Metadata) => {
      observation ??= observer.start(descriptor, metadata ?? new Metadata(), call.getPeer());
      return observation;
    };
    return new ServerInterceptingCall(call, {
      start: (next) => {
        next({
          // Later interceptors run in the call's context too (their log lines join the trace).
          onReceiveMetadata: (metadata, nextMetadata) =>
            observe(metadata).run(nextMetadata, metadata),
          // Unary and server-streaming handlers start at half-close; only request streams
          // hand messages to already running handler code, which must see the span.
          ...(descriptor.requestStream
            ? {
                onReceiveMessage: (message: unknown, nextMessage: (message: unknown) => void) =>
                  observe().run(nextMessage, message),
              }
            : {}),
          onReceiveHalfClose: (nextHalfClose) => observe().run(nextHalfClose, undefined),
          onCancel: () => observation?.cancelled(call.getDeadline()),
        });
      },
      sendStatus: (statusObject, nextStatus) => {
        observe().end(statusObject.code, statusObject.details);
        nextStatus(statusObject as StatusObject);
      },
    });
  };
  return Object.assign(interceptor, { [CALL_OBSERVER]: observer });
}

/** The per-call work of {@link createServerInterceptor}, for a mesh server to run itself. */
export function createServerCallObserver(options: ServerInterceptorOptions): CallObserver {
  const { propagator, metrics } = options;
  const startSpan = createRpcSpanStarter(options.tracer);
  // grpc-js runs interceptors only for registered methods (unknown paths get UNIMPLEMENTED
  // before), so this map and the metric series stay bounded whatever clients send.
  const methods = new Map<string, MethodInfo>();
  const infoFor = (descriptor: ObservedMethod): MethodInfo => {
    let info = methods.get(descriptor.path);
    if (!info) {
      const { service, method } = splitMethodPath(descriptor.path);
      const labels = {
        grpc_service: service,
        grpc_method: method,
        grpc_type: grpcType(descriptor.requestStream, descriptor.responseStream),
      };
      info = {
        spanName: `${service}/${method}`,
        service,
        method,
        labels,
        attributes: new Map(),
        started: metrics && counterChild(metrics.started, labels),
        handled: new Map(),
        seconds: metrics && histogramChild(metrics.handlingSeconds, labels, GRPC_HANDLING_BUCKETS),
      };
      methods.set(descriptor.path, info);
    }
    return info;
  };
  const attributesFor = (info: MethodInfo, peerText: string): Attributes => {
    let attributes = info.attributes.get(peerText);
    if (!attributes) {
      if (info.attributes.size >= MAX_CACHED_PEERS) info.attributes.clear();
      const peer = parsePeer(peerText);
      attributes = { 'rpc.system': 'grpc', 'rpc.service': info.service, 'rpc.method': info.method };
      if (peer.address) attributes['network.peer.address'] = peer.address;
      if (peer.port) attributes['network.peer.port'] = peer.port;
      // Shared by every span of the method and peer: frozen, spans keep their own additions.
      Object.freeze(attributes);
      info.attributes.set(peerText, attributes);
    }
    return attributes;
  };
  const ended = (info: MethodInfo, startedAt: number, code: number) => {
    if (!metrics) return;
    let handled = info.handled.get(code);
    if (!handled) {
      handled = counterChild(metrics.handled, { ...info.labels, grpc_code: grpcCodeName(code) });
      info.handled.set(code, handled);
    }
    handled.inc();
    info.seconds!.observe((performance.now() - startedAt) / 1000);
  };

  return {
    start(descriptor, metadata, peer) {
      const startedAt = performance.now();
      const info = infoFor(descriptor);
      info.started?.inc();
      const parent = propagator.extract(ROOT_CONTEXT, metadata, metadataGetter);
      const span = startSpan(info.spanName, SpanKind.SERVER, attributesFor(info, peer), parent);
      return new ServerCall(trace.setSpan(parent, span), span, info, startedAt, ended);
    },
  };
}

/** One observed server call. A class: every call makes one, and closures would make five. */
class ServerCall implements CallObservation {
  readonly #context: Context;
  readonly #span: Span;
  readonly #info: MethodInfo;
  readonly #startedAt: number;
  readonly #ended: (info: MethodInfo, startedAt: number, code: number) => void;
  #done = false;

  constructor(
    ctx: Context,
    span: Span,
    info: MethodInfo,
    startedAt: number,
    ended: (info: MethodInfo, startedAt: number, code: number) => void,
  ) {
    this.#context = ctx;
    this.#span = span;
    this.#info = info;
    this.#startedAt = startedAt;
    this.#ended = ended;
  }

  run<A>(fn: (arg: A) => void, arg: A): void {
    context.with(this.#context, fn, undefined, arg);
  }

  end(code: number, details: string | undefined): void {
    if (this.#done) return;
    this.#done = true;
    this.#ended(this.#info, this.#startedAt, code);
    const span = this.#span;
    // Unsampled spans record nothing: skip the attribute and status work for them.
    if (span.isRecording()) {
      span.setAttribute('rpc.grpc.status_code', code);
      if (SERVER_ERROR_CODES.has(code)) {
        span.setStatus({
          code: SpanStatusCode.ERROR,
          message: scrubSecrets(`${grpcCodeName(code)}: ${details ?? ''}`),
        });
      }
    }
    span.end();
  }

  cancelled(deadline: Date | number): void {
    if (this.#done) return;
    // The transport ends cancelled and timed-out calls itself, without a status. A client
    // whose deadline passed resets the stream slightly before the server's own timer fires
    // (the timeout header is read later), so "at or within 100 ms of the deadline" counts as a
    // deadline.
    const remaining = deadline === Infinity ? Infinity : new Date(deadline).getTime() - Date.now();
    this.end(
      remaining <= DEADLINE_SLACK_MS ? status.DEADLINE_EXCEEDED : status.CANCELLED,
      'cancelled',
    );
  }
}
