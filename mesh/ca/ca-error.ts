import { status } from '@grpc/grpc-js';
import { BulwarkError } from '../errors.ts';

/** Stable codes of {@link CaError}. */
export type CaErrorCode =
  | 'ERR_CA_INVALID_NAME'
  | 'ERR_CA_INVALID_TRUST_DOMAIN'
  | 'ERR_CA_INVALID_OPTION'
  | 'ERR_CA_INVALID_SVID'
  | 'ERR_CA_FILE_EXISTS'
  | 'ERR_CA_FILE_UNREADABLE';

const statuses: Record<CaErrorCode, status> = {
  ERR_CA_INVALID_NAME: status.INVALID_ARGUMENT,
  ERR_CA_INVALID_TRUST_DOMAIN: status.INVALID_ARGUMENT,
  ERR_CA_INVALID_OPTION: status.INVALID_ARGUMENT,
  ERR_CA_INVALID_SVID: status.UNAUTHENTICATED,
  ERR_CA_FILE_EXISTS: status.FAILED_PRECONDITION,
  ERR_CA_FILE_UNREADABLE: status.UNAVAILABLE,
};

/**
 * Error of the mesh CA: bad names or options, certificates that are not valid X.509-SVIDs,
 * missing or existing files. The message never contains key material.
 */
export class CaError extends BulwarkError<CaErrorCode> {
  constructor(code: CaErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, statuses[code], options);
  }
}
