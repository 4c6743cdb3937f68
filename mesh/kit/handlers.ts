import type {
  handleServerStreamingCall,
  handleUnaryCall,
  ServerUnaryCall,
  ServerWritableStream,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { BulwarkError, toServiceError } from '../errors.ts';

/** Where handler failures are logged; `undefined` logs nothing. */
export interface HandlerOptions {
  logger?: Logger;
}

function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function';
}

function report(err: unknown, method: string, logger: Logger | undefined): void {
  if (!logger) return;
  if (err instanceof BulwarkError) {
    logger.info(
      { method, code: err.code, err: err.cause ?? undefined },
      `call failed: ${err.code}`,
    );
  } else {
    // Unexpected errors are logged in full here and sent only as a fixed INTERNAL status.
    logger.error({ method, err }, 'call failed with an unexpected error');
  }
}

/**
 * Wraps an async unary handler: its result becomes the response; anything it throws becomes
 * a safe status through `toServiceError` (a `BulwarkError` keeps its status and message,
 * anything else is `INTERNAL` without details), and is logged.
 *
 * @example
 * ```ts
 * const impl: AuditServiceServer = {
 *   append: unaryHandler(async (call) => store.append(call.request), { logger }),
 *   // ...
 * };
 * ```
 */
export function unaryHandler<Req, Res>(
  handler: (call: ServerUnaryCall<Req, Res>) => Promise<Res> | Res,
  options: HandlerOptions = {},
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const fail = (err: unknown) => {
      report(err, call.getPath(), options.logger);
      callback(toServiceError(err));
    };
    // Called directly rather than from a promise chain: a synchronous handler answers without
    // two extra microtask hops per call, and a synchronous throw takes the same path as a
    // rejection.
    let result: Promise<Res> | Res;
    try {
      result = handler(call);
    } catch (err) {
      fail(err);
      return;
    }
    if (isThenable(result)) {
      Promise.resolve(result).then((response) => callback(null, response), fail);
    } else {
      callback(null, result);
    }
  };
}

/**
 * Wraps an async server-streaming handler: the stream ends when the handler resolves;
 * a throw ends it with a safe status (see {@link unaryHandler}).
 */
export function serverStreamHandler<Req, Res>(
  handler: (call: ServerWritableStream<Req, Res>) => Promise<void>,
  options: HandlerOptions = {},
): handleServerStreamingCall<Req, Res> {
  return (call) => {
    Promise.resolve()
      .then(() => handler(call))
      .then(
        () => call.end(),
        (err: unknown) => {
          report(err, call.getPath(), options.logger);
          // grpc-js turns an 'error' event on a server stream into the call's final status.
          call.emit('error', toServiceError(err));
        },
      );
  };
}
