/**
 * Envoy's gRPC services (ext_authz, access-log service) for grpc-js, loaded with
 * `@grpc/proto-loader` from the protos shipped in `@grpc/grpc-js-xds` at run time; they are
 * never copied into the repository. One loader for every service that speaks to Envoy.
 */
import { loadPackageDefinition, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { envoyIncludeDirs } from './proto-schema.ts';

/** proto-loader options shared by servers and test clients (camelCase fields, enum names). */
export const ENVOY_LOADER_OPTIONS = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
} as const;

/** A loaded Envoy service: its definition for a server, its generic client class for tests. */
export interface EnvoyGrpcService {
  service: ServiceDefinition;
  client: new (...args: never[]) => unknown;
}

const loaded = new Map<string, EnvoyGrpcService>();

/**
 * Loads one Envoy gRPC service by proto file and fully qualified name (cached per process).
 *
 * @example
 * ```ts
 * const { service } = loadEnvoyGrpcService(
 *   'envoy/service/auth/v3/external_auth.proto',
 *   'envoy.service.auth.v3.Authorization',
 * );
 * ```
 */
export function loadEnvoyGrpcService(protoFile: string, serviceName: string): EnvoyGrpcService {
  const hit = loaded.get(serviceName);
  if (hit) return hit;
  const definition = loadSync(protoFile, {
    ...ENVOY_LOADER_OPTIONS,
    includeDirs: envoyIncludeDirs(),
  });
  let node: unknown = loadPackageDefinition(definition);
  for (const part of serviceName.split('.')) node = (node as Record<string, unknown>)?.[part];
  const ctor = node as (EnvoyGrpcService['client'] & { service?: ServiceDefinition }) | undefined;
  if (typeof ctor !== 'function' || !ctor.service) {
    throw new Error(`${protoFile} does not define the service ${serviceName}`);
  }
  const entry = { service: ctor.service, client: ctor };
  loaded.set(serviceName, entry);
  return entry;
}
