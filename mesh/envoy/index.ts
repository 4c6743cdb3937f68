/**
 * The Envoy gateway's configuration: rendered from `bulwark.yaml`, and validated against
 * Envoy's own protos (from `@grpc/grpc-js-xds`) with every issue located by its YAML path.
 */
export { EnvoyError, type EnvoyErrorCode } from './envoy-error.ts';
export {
  ENVOY_LOADER_OPTIONS,
  loadEnvoyGrpcService,
  type EnvoyGrpcService,
} from './grpc-services.ts';
export {
  BOOTSTRAP_TYPE,
  createEnvoySchema,
  loadEnvoySchema,
  type EnvoySchema,
} from './proto-schema.ts';
export {
  formatIssue,
  validateEnvoyConfig,
  type EnvoyValidation,
  type ValidateEnvoyOptions,
} from './validate.ts';
export type { ConfigIssue } from './walk-message.ts';
export { formatPath, type PathSegment } from './config-path.ts';
export { renderEnvoyConfig, renderEnvoyYaml } from './render.ts';
export {
  ENVOY_RENDER_DEFAULTS,
  resolveRenderOptions,
  type EnvoyRenderOptions,
  type GatewayUpstream,
  type UpstreamEndpoint,
} from './render-options.ts';
export { AUDIT_READ_METHODS } from './render-listener.ts';
export {
  renderOptionsFromConfig,
  type MeshConfigForEnvoy,
  type UpstreamHosts,
} from './from-config.ts';
