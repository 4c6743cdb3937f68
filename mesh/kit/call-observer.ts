import type { Interceptor, Metadata, ServerInterceptor } from '@grpc/grpc-js';

/**
 * A server interceptor may carry a {@link CallObserver} under this registered symbol (the
 * telemetry interceptor does). A mesh server whose only extra interceptor offers one folds it
 * into its own single per-call interceptor, so a traced call pays for one grpc-js interceptor
 * layer instead of three; anywhere else the interceptor works as a plain grpc-js interceptor.
 */
export const CALL_OBSERVER: unique symbol = Symbol.for('bulwark.mesh.callObserver');

/** The method of a call, as grpc-js describes it to server interceptors. */
export interface ObservedMethod {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

/** One call being observed (see {@link CallObserver}). */
export interface CallObservation {
  /** Runs `fn(arg)` in the call's context: the handler's start and each request message. */
  run<A>(fn: (arg: A) => void, arg: A): void;
  /** The call ended with this status. Only the first end or cancel counts. */
  end(code: number, details: string | undefined): void;
  /** The transport ended the call without a status (cancelled, or its deadline passed). */
  cancelled(deadline: Date | number): void;
}

/** Watches every call of a server from its request metadata to its end. */
export interface CallObserver {
  /**
   * A call's request metadata arrived. `peer` is the caller's `ip:port` (as `call.getPeer()`).
   */
  start(method: ObservedMethod, metadata: Metadata, peer: string): CallObservation;
}

/** The observer an interceptor carries, if any. */
export function callObserverOf(interceptor: ServerInterceptor): CallObserver | undefined {
  return (interceptor as ServerInterceptor & { [CALL_OBSERVER]?: CallObserver })[CALL_OBSERVER];
}

/**
 * A client interceptor may carry a {@link ClientCallObserver} under this registered symbol (the
 * telemetry interceptor does). A mesh client whose only extra interceptor offers one runs its
 * unary calls without any grpc-js interceptor layer: the observer and the default deadline are
 * applied where the call starts. Streaming calls still go through the interceptor.
 */
export const CLIENT_CALL_OBSERVER: unique symbol = Symbol.for('bulwark.mesh.clientCallObserver');

/** One unary client call being observed (see {@link ClientCallObserver}). */
export interface ClientCallObservation {
  /**
   * The call ended with `code` (0 for OK) and `details`; `callback(err, value)`, the caller's
   * own, then runs in the caller's context.
   */
  end<E, V>(
    code: number,
    details: string,
    callback: (err: E, value: V) => void,
    err: E,
    value: V,
  ): void;
}

/** Watches the unary calls of a client from their start to their status. */
export interface ClientCallObserver {
  /**
   * A unary call of method `path` (`/package.Service/Method`) starts, with this request
   * metadata (the call's own copy: the observer may add to it, e.g. the trace context).
   */
  startUnary(path: string, metadata: Metadata): ClientCallObservation;
}

/** The client observer an interceptor carries, if any. */
export function clientCallObserverOf(interceptor: Interceptor): ClientCallObserver | undefined {
  return (interceptor as Interceptor & { [CLIENT_CALL_OBSERVER]?: ClientCallObserver })[
    CLIENT_CALL_OBSERVER
  ];
}
