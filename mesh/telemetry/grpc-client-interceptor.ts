import { InterceptingCall, status, type Interceptor, type Listener } from '@grpc/grpc-js';
import {
  context,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type TextMapPropagator,
  type Tracer,
} from '@opentelemetry/api';
import { grpcCodeName, metadataSetter, splitMethodPath } from './grpc-names.ts';
import { scrubSecrets } from './redact.ts';

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
 * @example
 * ```ts
 * const client = new EchoServiceClient(address, credentials, {
 *   interceptors: [createClientInterceptor({ tracer, propagator })],
 * });
 * ```
 */
export function createClientInterceptor(options: ClientInterceptorOptions): Interceptor {
  const { tracer, propagator } = options;
  // Span name and attributes depend only on the method: build them once per method.
  const methods = new Map<string, { name: string; attributes: Attributes }>();
  return (callOptions, nextCall) => {
    const path = callOptions.method_definition.path;
    let info = methods.get(path);
    if (!info) {
      const { service, method } = splitMethodPath(path);
      info = {
        name: `${service}/${method}`,
        attributes: { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': method },
      };
      methods.set(path, info);
    }
    const parent = context.active();
    const span = tracer.startSpan(
      info.name,
      { kind: SpanKind.CLIENT, attributes: info.attributes },
      parent,
    );
    const spanContext = trace.setSpan(parent, span);
    // Unsampled spans record nothing: skip the attribute and status work for them.
    const recording = span.isRecording();
    const listener: Listener = {
      onReceiveStatus: (statusObject, nextStatus) => {
        if (recording) {
          span.setAttribute('rpc.grpc.status_code', statusObject.code);
          if (statusObject.code !== status.OK) {
            span.setStatus({
              code: SpanStatusCode.ERROR,
              message: scrubSecrets(
                `${grpcCodeName(statusObject.code)}: ${statusObject.details ?? ''}`,
              ),
            });
          }
        }
        span.end();
        context.with(parent, nextStatus, undefined, statusObject);
      },
    };
    // A unary response reaches the caller with the status; only streamed responses run caller
    // code per message (an unset listener method passes straight through).
    if (callOptions.method_definition.responseStream) {
      listener.onReceiveMessage = (message, nextMessage) =>
        context.with(parent, nextMessage, undefined, message);
    }
    return new InterceptingCall(nextCall(callOptions), {
      start: (metadata, _listener, next) => {
        propagator.inject(spanContext, metadata, metadataSetter);
        next(metadata, listener);
      },
    });
  };
}
