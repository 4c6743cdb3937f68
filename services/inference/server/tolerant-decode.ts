/**
 * A ModelInfer definition whose request decoder never fails. grpc-js answers an undecodable
 * request with a bare INTERNAL before any handler runs, so it would be neither precise nor
 * audited; here the failure is carried into the handler instead, which authenticates the caller,
 * refuses with INVALID_ARGUMENT and audits the refusal like any other.
 */
import {
  GRPCInferenceServiceService,
  ModelInferRequest,
} from '../../../gen/inference/grpc_service.ts';

const MALFORMED = Symbol('bulwark.malformed-request');

type Tagged = ModelInferRequest & { [MALFORMED]?: string };

function describe(err: unknown): string {
  const message = err instanceof Error ? err.message : '';
  if (/MAX_SAFE_INTEGER|MIN_SAFE_INTEGER/.test(message)) {
    return 'request is not a valid ModelInferRequest: an int64 field (e.g. a shape dimension) is beyond ±(2^53 - 1)';
  }
  return 'request is not a valid ModelInferRequest (malformed protobuf)';
}

/** Why the request could not be decoded, or undefined for a well-formed request. */
export function malformedReason(request: ModelInferRequest): string | undefined {
  return (request as Tagged)[MALFORMED];
}

/** `GRPCInferenceServiceService` with the tolerant ModelInfer decoder. */
export const tolerantInferenceDefinition = {
  ...GRPCInferenceServiceService,
  modelInfer: {
    ...GRPCInferenceServiceService.modelInfer,
    requestDeserialize: (value: Buffer): ModelInferRequest => {
      try {
        return ModelInferRequest.decode(value);
      } catch (err) {
        const empty: Tagged = ModelInferRequest.fromPartial({});
        empty[MALFORMED] = describe(err);
        return empty;
      }
    },
  },
} as const;
