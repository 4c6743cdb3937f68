import { stringify } from 'yaml';
import { SERVICE_NAMES, type BulwarkConfig, type ConfigFile } from '../config/index.ts';

/**
 * Turns a resolved configuration back into `bulwark.yaml` form (absolute paths, every default
 * spelled out), so each child process of `bulwark up` reads exactly what the launcher planned.
 */
export function toConfigFile(config: BulwarkConfig): ConfigFile {
  const services = Object.fromEntries(
    SERVICE_NAMES.map((name) => {
      const s = config.services[name];
      return [
        name,
        {
          host: s.host,
          port: s.port,
          metricsPort: s.metricsPort,
          ...(s.publicUrl ? { publicUrl: s.publicUrl } : {}),
          peers: [...s.allowedPeers],
          clientCertificate: s.clientCertificate,
        },
      ];
    }),
  );
  const organisations = Object.fromEntries(
    config.organisations.map(({ id, trustedIssuers, roleMapping, ...org }) => [
      id,
      {
        ...org,
        roleMapping: roleMapping.map((r) => ({ ...r })),
        trustedIssuers: trustedIssuers.map((t) => ({ ...t })),
      },
    ]),
  );
  const models = Object.fromEntries(
    config.models.map((m) => [m.name, { bundleDir: m.bundleDir, riskTier: m.riskTier }]),
  );
  return {
    version: 1,
    trustDomain: config.trustDomain,
    stateDir: config.stateDir,
    services,
    organisations,
    models,
    policy: { ...config.policy, testFiles: [...config.policy.testFiles] },
    storage: { ...config.storage },
    telemetry: { ...config.telemetry },
  } as ConfigFile;
}

/** The YAML text of {@link toConfigFile}, with a header saying where it came from. */
export function renderRunConfig(config: BulwarkConfig): string {
  return (
    `# Written by \`bulwark up\` from ${config.source ?? 'the embedded defaults'}; ` +
    'rewritten on every start, do not edit.\n' +
    stringify(toConfigFile(config))
  );
}
