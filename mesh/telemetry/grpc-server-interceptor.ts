import { performance } from 'node:perf_hooks';
import {
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
  grpcCodeName,
  grpcType,
  metadataGetter,
  parsePeer,
  splitMethodPath,
} from './grpc-names.ts';
import type { GrpcServerMetrics } from './metrics.ts';
import { scrubSecrets } from './redact.ts';

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

interface MethodInfo {
  spanName: string;
  service: string;
  method: string;
  attributes: Attributes;
  labels: { grpc_service: string; grpc_method: string; grpc_type: string };
  handledLabels: Map<
    number,
    { grpc_service: string; grpc_method: string; grpc_type: string; grpc_code: string }
  >;
}

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

/**
 * A grpc-js server interceptor that, for every call: extracts the W3C trace context from the
 * metadata, starts a SERVER span `<package.Service>/<Method>` with `rpc.*` attributes, runs
 * the handler inside that span's context (so the handler's own client calls become its
 * children and its logs carry the trace id), and on the status ends the span and feeds
 * `grpc_server_started_total`, `grpc_server_handled_total` and `grpc_server_handling_seconds`.
 *
 * Put it first in the server's `interceptors` so calls refused by later interceptors (peer
 * allow-list, auth) are traced and counted too.
 *
 * @example
 * ```ts
 * const server = new Server({ interceptors: [createServerInterceptor({ tracer, propagator })] });
 * ```
 */
export function createServerInterceptor(options: ServerInterceptorOptions): ServerInterceptor {
  const { tracer, propagator, metrics } = options;
  // Names, labels and attributes depend only on the method: work them out once per method.
  // grpc-js runs interceptors only for registered methods (unknown paths get UNIMPLEMENTED
  // before), so this map and the metric label sets stay bounded whatever clients send.
  const methods = new Map<string, MethodInfo>();
  const infoFor = (path: string, requestStream: boolean, responseStream: boolean) => {
    let info = methods.get(path);
    if (!info) {
      const { service, method } = splitMethodPath(path);
      const labels = {
        grpc_service: service,
        grpc_method: method,
        grpc_type: grpcType(requestStream, responseStream),
      };
      info = {
        spanName: `${service}/${method}`,
        service,
        method,
        attributes: { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': method },
        labels,
        handledLabels: new Map(),
      };
      methods.set(path, info);
    }
    return info;
  };
  const handledLabels = (info: MethodInfo, code: number) => {
    let labels = info.handledLabels.get(code);
    if (!labels) {
      labels = { ...info.labels, grpc_code: grpcCodeName(code) };
      info.handledLabels.set(code, labels);
    }
    return labels;
  };
  // A connection's calls share one peer string: parse it once (bounded, as peers come and go).
  const peers = new Map<string, { address?: string; port?: number }>();
  const spanAttributes = (info: MethodInfo, peerText: string): Attributes => {
    let peer = peers.get(peerText);
    if (!peer) {
      if (peers.size >= MAX_CACHED_PEERS) peers.clear();
      peer = parsePeer(peerText);
      peers.set(peerText, peer);
    }
    if (peer.address && peer.port) {
      return {
        'rpc.system': 'grpc',
        'rpc.service': info.service,
        'rpc.method': info.method,
        'network.peer.address': peer.address,
        'network.peer.port': peer.port,
      };
    }
    return {
      ...info.attributes,
      ...(peer.address ? { 'network.peer.address': peer.address } : {}),
      ...(peer.port ? { 'network.peer.port': peer.port } : {}),
    };
  };
  return (descriptor, call) => {
    const startedAt = performance.now();
    const info = infoFor(descriptor.path, descriptor.requestStream, descriptor.responseStream);
    metrics?.started.inc(info.labels);
    let span: Span | undefined;
    let spanContext: Context = ROOT_CONTEXT;
    let finished = false;

    const finish = (code: number, details: string | undefined): void => {
      if (finished) return;
      finished = true;
      if (metrics) {
        metrics.handled.inc(handledLabels(info, code));
        metrics.handlingSeconds.observe(info.labels, (performance.now() - startedAt) / 1000);
      }
      if (!span) return;
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
    };

    return new ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            const parent = propagator.extract(ROOT_CONTEXT, metadata, metadataGetter);
            span = tracer.startSpan(
              info.spanName,
              { kind: SpanKind.SERVER, attributes: spanAttributes(info, call.getPeer()) },
              parent,
            );
            spanContext = trace.setSpan(parent, span);
            context.with(spanContext, nextMetadata, undefined, metadata);
          },
          // Unary and server-streaming handlers start at half-close; only request streams
          // hand messages to already running handler code, which must see the span.
          ...(descriptor.requestStream
            ? {
                onReceiveMessage: (message: unknown, nextMessage: (message: unknown) => void) =>
                  context.with(spanContext, nextMessage, undefined, message),
              }
            : {}),
          onReceiveHalfClose: (nextHalfClose) => {
            context.with(spanContext, nextHalfClose);
          },
          onCancel: () => {
            // The transport ends cancelled and timed-out calls itself, without sendStatus. A
            // client whose deadline passed resets the stream slightly before the server's own
            // timer fires (the timeout header is read later), so "at or within 100 ms of the
            // deadline" counts as a deadline.
            const deadline = call.getDeadline();
            const remaining =
              deadline === Infinity ? Infinity : new Date(deadline).getTime() - Date.now();
            const timedOut = remaining <= DEADLINE_SLACK_MS;
            finish(timedOut ? status.DEADLINE_EXCEEDED : status.CANCELLED, 'cancelled');
          },
        });
      },
      sendStatus: (statusObject, nextStatus) => {
        finish(statusObject.code, statusObject.details);
        nextStatus(statusObject as StatusObject);
      },
    });
  };
}
