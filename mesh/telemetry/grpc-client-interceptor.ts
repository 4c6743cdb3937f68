import {
  InterceptingCall,
  status,
  type Interceptor,
  type Listener,
  type Metadata,
  type StatusObject,
} from '@grpc/grpc-js';
import {
  context,
  INVALID_TRACEID,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type TextMapPropagator,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  CLIENT_CALL_OBSERVER,
  type ClientCallObservation,
  type ClientCallObserver,
} from '../kit/call-observer.ts';
import { grpcCodeName, metadataSetter, splitMethodPath } from './grpc-names.ts';
import { scrubSecrets } from './redact.ts';
import { createRpcSpanStarter } from './rpc-span.ts';

/** Options of {@link createClientInterceptor}. */
export interface ClientInterceptorOptions {
  tracer: Tracer;
  /** Writes `traceparent`/`tracestate` into the request metadata. */
  propagator: TextMapPropagator;
}

/**
 * A grpc-js client interceptor that starts a CLIENT span `<package.Service>/<Method>` as a
 * child of the active context (e.g. the server span of the handler making the call), injects
 * the W3C trace context into the request metadata, and ends the span with the call's status.
 * Response callbacks run in the caller's context.
 *
 * The interceptor also carries the same tracing as a {@link ClientCallObserver}: a mesh client
 * given it as its only extra interceptor traces unary calls without a grpc-js interceptor layer
 * (see `createMeshClient`).
 *
 * @example
 * ```ts
 * const client = new EchoServiceClient(address, credentials, {
 *   interceptors: [createClientInterceptor({ tracer, propagator })],
 * });
 * ```
 */
export function createClientInterceptor(options: ClientInterceptorOptions): Interceptor {
  const { propagator } = options;
  const startSpan = createRpcSpanStarter(options.tracer);
  // With the plain W3C propagator (the default) the header is written directly: the same
  // `traceparent`/`tracestate` it would write, without its generic checks and a context object.
  const inject: (span: Span, parent: Context, metadata: Metadata) => void =
    propagator instanceof W3CTraceContextPropagator
      ? (span, _parent, metadata) => {
          const spanContext = span.spanContext();
          // A suppressed or invalid context has nothing to propagate.
          if (spanContext.traceId === INVALID_TRACEID) return;
          metadata.set(
            'traceparent',
            `00-${spanContext.traceId}-${spanContext.spanId}-0${Number(spanContext.traceFlags || 0).toString(16)}`,
          );
          if (spanContext.traceState) {
            metadata.set('tracestate', spanContext.traceState.serialize());
          }
        }
      : (span, parent, metadata) =>
          propagator.inject(trace.setSpan(parent, span), metadata, metadataSetter);
  // Span name and attributes depend only on the method: build them once per method.
  const methods = new Map<string, { name: string; attributes: Attributes }>();
  const methodInfo = (path: string) => {
    let info = methods.get(path);
    if (!info) {
      const { service, method } = splitMethodPath(path);
      info = {
        name: `${service}/${method}`,
        // Shared by every span of the method: frozen, spans keep their own additions apart.
        attributes: Object.freeze({
          'rpc.system': 'grpc',
          'rpc.service': service,
          'rpc.method': method,
        }),
      };
      methods.set(path, info);
    }
    return info;
  };
  const observer: ClientCallObserver = {
    startUnary(path, metadata) {
      const info = methodInfo(path);
      const parent = context.active();
      const span = startSpan(info.name, SpanKind.CLIENT, info.attributes, parent);
      inject(span, parent, metadata);
      return new ClientCall(span, parent);
    },
  };
  const interceptor: Interceptor = (callOptions, nextCall) => {
    const info = methodInfo(callOptions.method_definition.path);
    const parent = context.active();
    const span = startSpan(info.name, SpanKind.CLIENT, info.attributes, parent);
    const call = new ClientCall(span, parent);
    // A unary response reaches the caller with the status; only streamed responses run caller
    // code per message (an unset listener method passes straight through).
    const listener: Listener = callOptions.method_definition.responseStream
      ? { onReceiveStatus: call.onReceiveStatus, onReceiveMessage: call.onReceiveMessage }
      : { onReceiveStatus: call.onReceiveStatus };
    return new InterceptingCall(nextCall(callOptions), {
      start: (metadata, _listener, next) => {
        inject(span, parent, metadata);
        next(metadata, listener);
      },
    });
  };
  return Object.assign(interceptor, { [CLIENT_CALL_OBSERVER]: observer });
}

/** One traced client call. */
class ClientCall implements ClientCallObservation {
  readonly #span: Span;
  readonly #parent: Context;

  constructor(span: Span, parent: Context) {
    this.#span = span;
    this.#parent = parent;
  }

  readonly onReceiveStatus = (
    statusObject: StatusObject,
    next: (statusObject: StatusObject) => void,
  ): void => {
    this.#endSpan(statusObject.code, statusObject.details);
    this.#inCaller(next, statusObject);
  };

  end<E, V>(
    code: number,
    details: string,
    callback: (err: E, value: V) => void,
    err: E,
    value: V,
  ): void {
    this.#endSpan(code, details);
    if (context.active() === this.#parent) callback(err, value);
    else context.with(this.#parent, callback, undefined, err, value);
  }

  #endSpan(code: number, details: string | undefined): void {
    const span = this.#span;
    // Unsampled spans record nothing: skip the attribute and status work for them.
    if (span.isRecording()) {
      span.setAttribute('rpc.grpc.status_code', code);
      if (code !== status.OK) {
        span.setStatus({
          code: SpanStatusCode.ERROR,
          message: scrubSecrets(`${grpcCodeName(code)}: ${details ?? ''}`),
        });
      }
    }
    span.end();
  }

  readonly onReceiveMessage = (message: unknown, next: (message: unknown) => void): void =>
    this.#inCaller(next, message);

  // The caller's callback runs in the caller's context. Usually it already is the active one
  // (a caller outside any trace, answered from the connection's root context): then there is
  // nothing to switch.
  #inCaller<A>(fn: (arg: A) => void, arg: A): void {
    if (context.active() === this.#parent) fn(arg);
    else context.with(this.#parent, fn, undefined, arg);
  }
}
