import { status } from '@grpc/grpc-js';
import { BulwarkError } from '../../mesh/errors.ts';

/** Stable error codes of the inference service. */
export type InferenceErrorCode =
  | 'ERR_INFERENCE_UNAUTHENTICATED'
  | 'ERR_INFERENCE_PERMISSION_DENIED'
  | 'ERR_INFERENCE_QUOTA_EXCEEDED'
  | 'ERR_INFERENCE_PRIVACY_BUDGET_EXHAUSTED'
  | 'ERR_INFERENCE_EXTRACTION_BLOCKED'
  | 'ERR_INFERENCE_INVALID_INPUT'
  | 'ERR_INFERENCE_MODEL_NOT_FOUND'
  | 'ERR_INFERENCE_MODEL_UNAVAILABLE'
  | 'ERR_INFERENCE_DEADLINE_EXCEEDED'
  | 'ERR_INFERENCE_AUDIT_UNAVAILABLE'
  | 'ERR_INFERENCE_POLICY_UNAVAILABLE'
  | 'ERR_INFERENCE_RUN_FAILED'
  | 'ERR_BUNDLE_INVALID'
  | 'ERR_BUNDLE_SIGNATURE'
  | 'ERR_BUNDLE_DIGEST'
  | 'ERR_BUNDLE_UNSAFE_PATH'
  | 'ERR_BUNDLE_EXTERNAL_DATA'
  | 'ERR_BUNDLE_OPERATOR_DOMAIN'
  | 'ERR_MODEL_ADMIN_CONFLICT';

const statuses: Record<InferenceErrorCode, status> = {
  ERR_INFERENCE_UNAUTHENTICATED: status.UNAUTHENTICATED,
  ERR_INFERENCE_PERMISSION_DENIED: status.PERMISSION_DENIED,
  ERR_INFERENCE_QUOTA_EXCEEDED: status.RESOURCE_EXHAUSTED,
  ERR_INFERENCE_PRIVACY_BUDGET_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  ERR_INFERENCE_EXTRACTION_BLOCKED: status.PERMISSION_DENIED,
  ERR_INFERENCE_INVALID_INPUT: status.INVALID_ARGUMENT,
  ERR_INFERENCE_MODEL_NOT_FOUND: status.NOT_FOUND,
  ERR_INFERENCE_MODEL_UNAVAILABLE: status.UNAVAILABLE,
  ERR_INFERENCE_DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
  ERR_INFERENCE_AUDIT_UNAVAILABLE: status.UNAVAILABLE,
  ERR_INFERENCE_POLICY_UNAVAILABLE: status.UNAVAILABLE,
  ERR_INFERENCE_RUN_FAILED: status.INTERNAL,
  ERR_BUNDLE_INVALID: status.FAILED_PRECONDITION,
  ERR_BUNDLE_SIGNATURE: status.FAILED_PRECONDITION,
  ERR_BUNDLE_DIGEST: status.FAILED_PRECONDITION,
  ERR_BUNDLE_UNSAFE_PATH: status.FAILED_PRECONDITION,
  ERR_BUNDLE_EXTERNAL_DATA: status.FAILED_PRECONDITION,
  ERR_BUNDLE_OPERATOR_DOMAIN: status.FAILED_PRECONDITION,
  ERR_MODEL_ADMIN_CONFLICT: status.FAILED_PRECONDITION,
};

/**
 * The inference domain's error: a stable `code`, a caller-safe `message` and the gRPC status it
 * becomes at the edge (via `toServiceError`).
 *
 * @example
 * ```ts
 * throw new InferenceError('ERR_INFERENCE_INVALID_INPUT', 'input "x": expected FP32, got INT8');
 * ```
 */
export class InferenceError extends BulwarkError<InferenceErrorCode> {
  constructor(code: InferenceErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, statuses[code], options);
  }
}

/** Shorthand for the common INVALID_ARGUMENT refusal. */
export function invalidInput(message: string): InferenceError {
  return new InferenceError('ERR_INFERENCE_INVALID_INPUT', message);
}
