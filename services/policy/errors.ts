import { status } from '@grpc/grpc-js';
import { BulwarkError } from '../../mesh/errors.ts';

/** Stable codes of every error the policy service raises. */
export type PolicyErrorCode =
  | 'ERR_POLICY_INVALID'
  | 'ERR_POLICY_INVALID_REQUEST'
  | 'ERR_POLICY_SOURCE_UNAVAILABLE'
  | 'ERR_POLICY_AUDIT_UNAVAILABLE'
  | 'ERR_POLICY_UNAUTHENTICATED';

const statuses: Record<PolicyErrorCode, status> = {
  ERR_POLICY_INVALID: status.FAILED_PRECONDITION,
  ERR_POLICY_INVALID_REQUEST: status.INVALID_ARGUMENT,
  ERR_POLICY_SOURCE_UNAVAILABLE: status.UNAVAILABLE,
  ERR_POLICY_AUDIT_UNAVAILABLE: status.UNAVAILABLE,
  ERR_POLICY_UNAUTHENTICATED: status.UNAUTHENTICATED,
};

/**
 * The one error class of the policy domain.
 *
 * @example
 * ```ts
 * throw new PolicyError('ERR_POLICY_INVALID', 'policy.yaml: rule "x": unknown attribute "colour"');
 * ```
 */
export class PolicyError extends BulwarkError<PolicyErrorCode> {
  constructor(code: PolicyErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, statuses[code], options);
  }
}
