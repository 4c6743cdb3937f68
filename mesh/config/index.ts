/**
 * `bulwark.yaml`: the one file that describes the mesh, validated with clear errors and
 * overridable by `BULWARK_*` variables. Services never read it: the launcher maps it to each
 * service's options.
 *
 * @example
 * ```ts
 * const config = loadConfig(); // $BULWARK_CONFIG, ./bulwark.yaml, or the embedded demo mesh
 * const audit = config.services.audit; // { address, allowedPeers, metricsPort, ... }
 * ```
 */
export {
  EMBEDDED_CONFIG_PATH,
  loadConfig,
  parseConfig,
  readSecretFile,
  type LoadConfigOptions,
  type ParseConfigOptions,
} from './load.ts';
export type {
  BulwarkConfig,
  ModelConfig,
  OrganisationConfig,
  RoleMappingConfig,
  ServiceConfig,
  StorageConfig,
  TrustedIssuerConfig,
} from './resolve.ts';
export { applyEnvOverrides, ENV_PREFIX } from './env-overrides.ts';
export {
  CONFIG_FILE_ENV,
  COMMAND_ENV,
  DEFAULTS,
  SERVICE_DEFAULTS,
  SERVICE_NAMES,
  type ServiceName,
} from './defaults.ts';
export { configFileSchema, type ConfigFile } from './schema.ts';
export { ConfigError, type ConfigErrorCode } from './config-error.ts';
