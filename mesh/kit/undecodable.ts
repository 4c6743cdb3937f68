/**
 * Clear refusals for requests that do not decode. grpc-js answers a request its decoder throws
 * on with a bare `INTERNAL` ("Error deserializing request") before any handler runs; a client
 * sending, say, a uint64 beyond 2^53 (which the generated code cannot hold in a number) would
 * see a server fault instead of its own mistake. The kit gives every unary method a decoder
 * that never throws and answers such requests with `INVALID_ARGUMENT` and a safe reason.
 * Streaming methods keep grpc-js's behaviour.
 */
import {
  Metadata,
  status,
  type ServerUnaryCall,
  type ServiceDefinition,
  type UntypedServiceImplementation,
  type sendUnaryData,
} from '@grpc/grpc-js';

const UNDECODABLE = Symbol('bulwark.undecodable-request');

interface Undecodable {
  [UNDECODABLE]: string;
}

function reasonOf(err: unknown): string {
  const message = err instanceof Error ? err.message : '';
  return /MAX_SAFE_INTEGER|MIN_SAFE_INTEGER/.test(message)
    ? 'request does not decode: an integer field is beyond ±(2^53 - 1)'
    : 'request does not decode (malformed protobuf)';
}

function isUndecodable(request: unknown): request is Undecodable {
  return typeof request === 'object' && request !== null && UNDECODABLE in request;
}

/**
 * Wraps the unary methods of a service so that an undecodable request reaches no handler and
 * is refused with `INVALID_ARGUMENT`.
 *
 * @example
 * ```ts
 * grpcServer.addService(...refuseUndecodable(AuditServiceService, implementation));
 * ```
 */
export function refuseUndecodable(
  definition: ServiceDefinition,
  implementation: UntypedServiceImplementation,
): [ServiceDefinition, UntypedServiceImplementation] {
  const wrappedDefinition: Record<string, ServiceDefinition[string]> = { ...definition };
  const wrappedImplementation: UntypedServiceImplementation = { ...implementation };
  for (const [name, method] of Object.entries(definition)) {
    const handler = implementation[name];
    if (method.requestStream || method.responseStream || typeof handler !== 'function') continue;
    const decode = method.requestDeserialize;
    wrappedDefinition[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return decode(bytes);
        } catch (err) {
          return { [UNDECODABLE]: reasonOf(err) } satisfies Undecodable;
        }
      },
    };
    wrappedImplementation[name] = (
      call: ServerUnaryCall<unknown, unknown>,
      callback: sendUnaryData<unknown>,
    ) => {
      if (isUndecodable(call.request)) {
        callback({
          code: status.INVALID_ARGUMENT,
          details: call.request[UNDECODABLE],
          metadata: new Metadata(),
        });
        return;
      }
      (handler as (c: typeof call, cb: typeof callback) => void)(call, callback);
    };
  }
  return [wrappedDefinition, wrappedImplementation];
}
