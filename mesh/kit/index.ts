/**
 * Mesh service kit: grpc-js servers and clients with mutual TLS from the mesh CA, a peer
 * allow-list of SPIFFE IDs checked on every call, the `grpc.health.v1` service, certificate
 * reload without restart, graceful shutdown and default deadlines.
 */
export { MeshError, type MeshErrorCode } from './mesh-error.ts';
export { createMeshServer, type MeshServer, type MeshServerOptions } from './server.ts';
export { runServiceProcess, type ServiceProcessOptions } from './service-process.ts';
export {
  createMeshClient,
  createMeshCredentials,
  defaultDeadlineInterceptor,
  type GrpcClientConstructor,
  type MeshClientOptions,
  type MeshCredentialsOptions,
  type TlsPem,
} from './client.ts';
export { MESH_GRPC_OPTIONS } from './grpc-defaults.ts';
export { peerIdentity, type PeerIdentity } from './peer-identity.ts';
export { compileAllowList, type PeerAllowList } from './allow-list.ts';
export { type ClientCertificateMode } from './peer-check.ts';
export { createHealthService, type MeshHealth, type ServingStatus } from './health.ts';
export { probeHealth, type HealthProbeOptions, type HealthProbeResult } from './health-probe.ts';
export { serverStreamHandler, unaryHandler, type HandlerOptions } from './handlers.ts';
export { type TlsFiles } from './tls-files.ts';
export {
  CALL_OBSERVER,
  CLIENT_CALL_OBSERVER,
  type CallObservation,
  type CallObserver,
  type ClientCallObservation,
  type ClientCallObserver,
  type ObservedMethod,
} from './call-observer.ts';
