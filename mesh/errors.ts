import { Metadata, status, type ServiceError } from '@grpc/grpc-js';

/**
 * Base of every Bulwark domain error. Each domain (audit, policy, mesh, ...) declares one
 * subclass with a closed union of stable `code`s and a table that maps each code to the gRPC
 * status it becomes at the service edge.
 *
 * The `message` is written for the caller and must never contain a secret; the `cause` is
 * kept for logs only and never crosses the wire.
 *
 * @example
 * ```ts
 * type AuditErrorCode = 'ERR_AUDIT_STORE_UNAVAILABLE' | 'ERR_AUDIT_INVALID_RECORD';
 * class AuditError extends BulwarkError<AuditErrorCode> {
 *   static readonly statuses = { ERR_AUDIT_STORE_UNAVAILABLE: status.UNAVAILABLE, ... };
 *   constructor(code: AuditErrorCode, message: string, options?: ErrorOptions) {
 *     super(code, message, AuditError.statuses[code], options);
 *   }
 * }
 * ```
 */
export abstract class BulwarkError<Code extends string = string> extends Error {
  readonly code: Code;
  /** The gRPC status this error becomes at the edge. */
  readonly grpcStatus: status;

  protected constructor(code: Code, message: string, grpcStatus: status, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.grpcStatus = grpcStatus;
    this.name = new.target.name;
  }
}

/** Reads a `code` from anything thrown, for logs and tests. */
export function errorCode(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') {
    return err.code;
  }
  return undefined;
}

/**
 * Converts anything thrown inside a handler into a gRPC error that is safe to send: a
 * {@link BulwarkError} keeps its status and public message (and its code in the
 * `bulwark-error-code` trailer); anything else becomes `INTERNAL` with a fixed message, so no
 * cause, stack or secret leaks to the caller.
 */
export function toServiceError(err: unknown): Partial<ServiceError> {
  const metadata = new Metadata();
  if (err instanceof BulwarkError) {
    metadata.set('bulwark-error-code', err.code);
    return { code: err.grpcStatus, details: err.message, metadata };
  }
  return { code: status.INTERNAL, details: 'internal error', metadata };
}
