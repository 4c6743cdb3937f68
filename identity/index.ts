export { createBroker } from './broker.ts';
export type { Broker } from './broker.ts';
export type {
  BrokerClientConfig,
  BrokerOptions,
  OrganisationConfig,
  TrustedIssuer,
} from './options.ts';
export type { RoleMappingRule } from './role-mapping.ts';
export { mapRoles } from './role-mapping.ts';
export type {
  AuditRecordOptions,
  AuditSink,
  IdentityAuditEvent,
  IdentityAuditAction,
} from './audit-sink.ts';
export { createBufferedAuditSink } from './audit-queue.ts';
export type { BufferedAuditSink, BufferedAuditSinkOptions } from './audit-queue.ts';
export { PRIVILEGED_SCOPES } from './privileged-guard.ts';
export { routeOf, traceHttp } from './http-tracing.ts';
export type { HttpTracing } from './http-tracing.ts';
export { createMemoryAuditSink } from './audit-sink.ts';
export type { SigningKeyInfo } from './key-manager.ts';
export { IdentityError } from './errors.ts';
export type { IdentityErrorCode } from './errors.ts';
export { RESOURCES, MESH_SCOPES } from './resources.ts';
export { DEVICE_CODE_GRANT, TOKEN_EXCHANGE_GRANT } from './provider-config.ts';
export { createTlsFetch } from './tls-fetch.ts';
export { startDemoIdp, DEMO_USERS } from './demo-idp/index.ts';
export type { DemoIdp, DemoIdpOptions } from './demo-idp/index.ts';
export { createAuditServiceSink, toAuditRecord } from './audit-service-sink.ts';
export { createIdentityAdminService } from './admin-service.ts';
export { resolveLaunchOptions } from './launch-options.ts';
export type { BrokerAuditTarget, BrokerLaunchOptions } from './launch-options.ts';
export { openSqliteAdapterStore } from './sqlite-adapter.ts';
export { deviceLogin, freshSession } from './client/device-login.ts';
export { defaultTokenFile, readSession, writeSession } from './client/token-file.ts';
export type { StoredSession } from './client/token-file.ts';
export { openPostgresIdentityStore } from './postgres-store.ts';
export { openSqliteIdentityStore } from './sqlite-store.ts';
export type { IdentityStore, KeyRecord } from './store.ts';
