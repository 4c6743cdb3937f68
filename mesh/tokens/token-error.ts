import { status } from '@grpc/grpc-js';
import { BulwarkError } from '../errors.ts';

/** Stable codes of {@link TokenError}. */
export type TokenErrorCode =
  | 'ERR_TOKEN_MALFORMED'
  | 'ERR_TOKEN_ALGORITHM_NOT_ALLOWED'
  | 'ERR_TOKEN_TYPE_NOT_ALLOWED'
  | 'ERR_TOKEN_KEY_NOT_FOUND'
  | 'ERR_TOKEN_KEYS_UNAVAILABLE'
  | 'ERR_TOKEN_SIGNATURE_INVALID'
  | 'ERR_TOKEN_CLAIM_INVALID'
  | 'ERR_TOKEN_EXPIRED'
  | 'ERR_TOKEN_NOT_YET_VALID';

const statuses: Record<TokenErrorCode, status> = {
  ERR_TOKEN_MALFORMED: status.UNAUTHENTICATED,
  ERR_TOKEN_ALGORITHM_NOT_ALLOWED: status.UNAUTHENTICATED,
  ERR_TOKEN_TYPE_NOT_ALLOWED: status.UNAUTHENTICATED,
  ERR_TOKEN_KEY_NOT_FOUND: status.UNAUTHENTICATED,
  ERR_TOKEN_KEYS_UNAVAILABLE: status.UNAVAILABLE,
  ERR_TOKEN_SIGNATURE_INVALID: status.UNAUTHENTICATED,
  ERR_TOKEN_CLAIM_INVALID: status.UNAUTHENTICATED,
  ERR_TOKEN_EXPIRED: status.UNAUTHENTICATED,
  ERR_TOKEN_NOT_YET_VALID: status.UNAUTHENTICATED,
};

/**
 * Why a bearer token was refused. The message is a fixed phrase (never token content);
 * `claim` names the claim that failed for `ERR_TOKEN_CLAIM_INVALID`.
 */
export class TokenError extends BulwarkError<TokenErrorCode> {
  readonly claim: string | undefined;
  constructor(code: TokenErrorCode, message: string, options?: ErrorOptions & { claim?: string }) {
    super(code, message, statuses[code], options);
    this.claim = options?.claim;
  }
}
