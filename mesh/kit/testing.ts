/**
 * Test helpers for code built on the mesh kit: a gRPC method without a proto file.
 */
import type { MethodDefinition } from '@grpc/grpc-js';

const serialize = (value: unknown) => Buffer.from(JSON.stringify(value ?? {}));
const deserialize = (bytes: Buffer): unknown => JSON.parse(bytes.toString('utf8') || '{}');

/**
 * A unary method whose messages travel as JSON (an empty body reads as `{}`), for tests of
 * the kit's transport, interceptors and telemetry that need a service but no proto.
 *
 * @example
 * ```ts
 * const EchoService = { echo: jsonUnaryMethod<Msg, Msg>('/bulwark.test.v1.EchoService/Echo') };
 * server.addService(EchoService, { echo: (call, cb) => cb(null, call.request) });
 * ```
 */
export function jsonUnaryMethod<Request = unknown, Response = unknown>(
  path: string,
): MethodDefinition<Request, Response> {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: serialize,
    requestDeserialize: deserialize as (bytes: Buffer) => Request,
    responseSerialize: serialize,
    responseDeserialize: deserialize as (bytes: Buffer) => Response,
  };
}
