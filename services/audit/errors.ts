import { status } from '@grpc/grpc-js';
import { BulwarkError } from '../../mesh/errors.ts';

/** Stable codes of the audit domain. */
export type AuditErrorCode =
  | 'ERR_AUDIT_INVALID_RECORD'
  | 'ERR_AUDIT_INVALID_REQUEST'
  | 'ERR_AUDIT_STORE_UNAVAILABLE'
  | 'ERR_AUDIT_INTEGRITY'
  | 'ERR_AUDIT_NOT_FOUND'
  | 'ERR_AUDIT_PERMISSION_DENIED'
  | 'ERR_AUDIT_UNAUTHENTICATED'
  | 'ERR_AUDIT_POLICY_UNAVAILABLE'
  | 'ERR_AUDIT_KEY'
  | 'ERR_AUDIT_CLOSED';

const statuses: Record<AuditErrorCode, status> = {
  ERR_AUDIT_INVALID_RECORD: status.INVALID_ARGUMENT,
  ERR_AUDIT_INVALID_REQUEST: status.INVALID_ARGUMENT,
  ERR_AUDIT_STORE_UNAVAILABLE: status.UNAVAILABLE,
  // The stored log no longer matches what was signed: refuse rather than guess.
  ERR_AUDIT_INTEGRITY: status.DATA_LOSS,
  ERR_AUDIT_NOT_FOUND: status.OUT_OF_RANGE,
  ERR_AUDIT_PERMISSION_DENIED: status.PERMISSION_DENIED,
  ERR_AUDIT_UNAUTHENTICATED: status.UNAUTHENTICATED,
  // Reads fail closed while the policy service cannot be asked.
  ERR_AUDIT_POLICY_UNAVAILABLE: status.UNAVAILABLE,
  ERR_AUDIT_KEY: status.INTERNAL,
  ERR_AUDIT_CLOSED: status.UNAVAILABLE,
};

/**
 * The audit domain's error.
 *
 * @example
 * ```ts
 * throw new AuditError('ERR_AUDIT_INVALID_RECORD', 'record.actor is required');
 * ```
 */
export class AuditError extends BulwarkError<AuditErrorCode> {
  constructor(code: AuditErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, statuses[code], options);
  }
}
