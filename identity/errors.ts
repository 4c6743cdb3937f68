import { status } from '@grpc/grpc-js';
import { BulwarkError } from '../mesh/errors.ts';

/** Stable codes of the identity broker's own (non-OAuth) errors. */
export type IdentityErrorCode =
  | 'ERR_IDENTITY_INVALID_OPTION'
  | 'ERR_IDENTITY_UNKNOWN_ORGANISATION'
  | 'ERR_IDENTITY_UPSTREAM_UNAVAILABLE'
  | 'ERR_IDENTITY_UPSTREAM_REFUSED'
  | 'ERR_IDENTITY_STATE_MISMATCH'
  | 'ERR_IDENTITY_ID_TOKEN_INVALID'
  | 'ERR_IDENTITY_DOMAIN_MISMATCH'
  | 'ERR_IDENTITY_UNKNOWN_CLIENT';

const statuses: Record<IdentityErrorCode, status> = {
  ERR_IDENTITY_INVALID_OPTION: status.INVALID_ARGUMENT,
  ERR_IDENTITY_UNKNOWN_ORGANISATION: status.NOT_FOUND,
  ERR_IDENTITY_UPSTREAM_UNAVAILABLE: status.UNAVAILABLE,
  ERR_IDENTITY_UPSTREAM_REFUSED: status.PERMISSION_DENIED,
  ERR_IDENTITY_STATE_MISMATCH: status.INVALID_ARGUMENT,
  ERR_IDENTITY_ID_TOKEN_INVALID: status.UNAUTHENTICATED,
  ERR_IDENTITY_DOMAIN_MISMATCH: status.PERMISSION_DENIED,
  ERR_IDENTITY_UNKNOWN_CLIENT: status.NOT_FOUND,
};

/**
 * The identity broker's error. OAuth endpoints answer with the standard OAuth error codes;
 * this class covers the broker's own pages, options and admin API.
 *
 * @example
 * ```ts
 * throw new IdentityError('ERR_IDENTITY_UNKNOWN_ORGANISATION', 'unknown organisation "x"');
 * ```
 */
export class IdentityError extends BulwarkError<IdentityErrorCode> {
  constructor(code: IdentityErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, statuses[code], options);
  }
}
