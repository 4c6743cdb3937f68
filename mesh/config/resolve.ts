import { isAbsolute, resolve as resolvePath } from 'node:path';
import { DEFAULTS, SERVICE_DEFAULTS, SERVICE_NAMES, type ServiceName } from './defaults.ts';
import type { ConfigFile } from './schema.ts';

/** One mesh service, every default filled in. */
export interface ServiceConfig {
  name: ServiceName;
  /** `spiffe://<trust-domain>/svc/<name>` */
  spiffeId: string;
  host: string;
  port: number;
  /** `host:port` (IPv6 hosts bracketed), ready for grpc-js. */
  address: string;
  metricsPort: number;
  publicUrl?: string;
  /** Peer SPIFFE IDs (exact, or prefixes ending in `/*`) allowed to call this service. */
  allowedPeers: string[];
  clientCertificate: 'required' | 'optional';
}

export interface RoleMappingConfig {
  claim: string;
  value: string | number | boolean;
  role: string;
}

export interface TrustedIssuerConfig {
  issuer: string;
  audience: string;
  jwksUri?: string;
  algorithms?: string[];
}

/** A partner organisation; the client secret stays in its file until the launcher reads it. */
export interface OrganisationConfig {
  id: string;
  displayName: string;
  issuer: string;
  clientId: string;
  /** Absolute path of the file holding the client secret (read it with `readSecretFile`). */
  clientSecretFile: string;
  emailDomains: string[];
  roleMapping: RoleMappingConfig[];
  defaultRoles: string[];
  upstreamScope?: string;
  trustedIssuers: TrustedIssuerConfig[];
}

export interface ModelConfig {
  name: string;
  /** Absolute path of the signed model bundle directory. */
  bundleDir: string;
  riskTier: 'low' | 'medium' | 'high';
}

export type StorageConfig =
  { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string; passwordFile?: string };

/** The whole mesh description with every default resolved and every path absolute. */
export type RiskTierName = 'low' | 'medium' | 'high';

/** A risk tier's quota per subject and model: sustained rate, burst and daily budget. */
export interface TierQuotaConfig {
  ratePerSec: number;
  burst: number;
  dailyBudget: number;
}

export interface BulwarkConfig {
  /** The file read, or `undefined` when only defaults and variables were used. */
  source?: string;
  trustDomain: string;
  stateDir: string;
  services: Record<ServiceName, ServiceConfig>;
  organisations: OrganisationConfig[];
  models: ModelConfig[];
  policy: { modelFile: string; policyFile: string; testFiles: string[]; watch: boolean };
  inference: { quotas: Record<RiskTierName, TierQuotaConfig> };
  storage: StorageConfig;
  telemetry: {
    logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
    traceFile?: string;
    metricsHost: string;
  };
}

/** Where relative paths start: the file's directory, or the working directory for variables. */
export interface PathBases {
  fileDir: string;
  cwd: string;
  origins: Map<string, string>;
}

/** Fills every default (from defaults.ts) and makes paths absolute. */
export function resolveConfig(file: ConfigFile, bases: PathBases, source?: string): BulwarkConfig {
  const fromEnv = (key: string) =>
    [...bases.origins.keys()].some((origin) => key === origin || key.startsWith(`${origin}.`));
  const abs = (value: string, key: string, base?: string) =>
    isAbsolute(value)
      ? value
      : resolvePath(fromEnv(key) ? bases.cwd : (base ?? bases.fileDir), value);
  const trustDomain = file.trustDomain ?? DEFAULTS.trustDomain;
  const stateDir = abs(file.stateDir ?? DEFAULTS.stateDir, 'stateDir');
  const peerId = (entry: string) => {
    if (entry.startsWith('spiffe://')) return entry;
    if (entry.includes('/')) return `spiffe://${trustDomain}/${entry.replace(/^\//, '')}`;
    return `spiffe://${trustDomain}/svc/${entry}`;
  };

  const services = {} as Record<ServiceName, ServiceConfig>;
  for (const name of SERVICE_NAMES) {
    const given = file.services?.[name] ?? {};
    const defaults = SERVICE_DEFAULTS[name];
    const host = given.host ?? DEFAULTS.host;
    const port = given.port ?? defaults.port;
    services[name] = {
      name,
      spiffeId: `spiffe://${trustDomain}/svc/${name}`,
      host,
      port,
      address: `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`,
      metricsPort: given.metricsPort ?? defaults.metricsPort,
      ...(given.publicUrl ? { publicUrl: given.publicUrl } : {}),
      allowedPeers: (given.peers ?? defaults.peers).map(peerId),
      clientCertificate: given.clientCertificate ?? defaults.clientCertificate,
    };
  }

  const organisations = Object.entries(file.organisations ?? {}).map(
    ([id, org]): OrganisationConfig => ({
      id,
      displayName: org.displayName,
      issuer: org.issuer,
      clientId: org.clientId,
      clientSecretFile: abs(org.clientSecretFile, `organisations.${id}.clientSecretFile`),
      emailDomains: org.emailDomains,
      roleMapping: org.roleMapping ?? [],
      defaultRoles: org.defaultRoles ?? [],
      ...(org.upstreamScope ? { upstreamScope: org.upstreamScope } : {}),
      trustedIssuers: (org.trustedIssuers ?? []).map((t) => ({
        issuer: t.issuer,
        audience: t.audience,
        ...(t.jwksUri ? { jwksUri: t.jwksUri } : {}),
        ...(t.algorithms ? { algorithms: [...t.algorithms] } : {}),
      })),
    }),
  );

  const models = Object.entries(file.models ?? {}).map(([name, model]): ModelConfig => ({
    name,
    bundleDir: abs(model.bundleDir, `models.${name}.bundleDir`),
    riskTier: model.riskTier,
  }));

  const policy = file.policy ?? {};
  const storage: StorageConfig =
    file.storage?.kind === 'postgres'
      ? {
          kind: 'postgres',
          url: file.storage.url,
          ...(file.storage.passwordFile
            ? { passwordFile: abs(file.storage.passwordFile, 'storage.passwordFile') }
            : {}),
        }
      : {
          kind: 'sqlite',
          path: abs(file.storage?.path ?? DEFAULTS.sqliteFile, 'storage.path', stateDir),
        };
  const telemetry = file.telemetry ?? {};
  const quotas = file.inference?.quotas ?? {};
  const tierQuota = (tier: RiskTierName): TierQuotaConfig => ({
    ...DEFAULTS.quotas[tier],
    ...quotas[tier],
  });

  return {
    ...(source ? { source } : {}),
    trustDomain,
    stateDir,
    services,
    organisations,
    models,
    policy: {
      modelFile: abs(policy.modelFile ?? DEFAULTS.policy.modelFile, 'policy.modelFile'),
      policyFile: abs(policy.policyFile ?? DEFAULTS.policy.policyFile, 'policy.policyFile'),
      testFiles: (policy.testFiles ?? DEFAULTS.policy.testFiles).map((f, i) =>
        abs(f, `policy.testFiles.${i}`),
      ),
      watch: policy.watch ?? DEFAULTS.policy.watch,
    },
    inference: {
      quotas: { low: tierQuota('low'), medium: tierQuota('medium'), high: tierQuota('high') },
    },
    storage,
    telemetry: {
      logLevel: telemetry.logLevel ?? DEFAULTS.telemetry.logLevel,
      ...(telemetry.traceFile
        ? { traceFile: abs(telemetry.traceFile, 'telemetry.traceFile') }
        : {}),
      metricsHost: telemetry.metricsHost ?? DEFAULTS.telemetry.metricsHost,
    },
  };
}
