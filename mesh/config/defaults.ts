/**
 * Every default of `bulwark.yaml`, in one place. The loader fills in whatever the file and the
 * `BULWARK_*` variables leave out from here.
 */

/** The mesh services; each has a SPIFFE ID `spiffe://<trust-domain>/svc/<name>`. */
export const SERVICE_NAMES = ['identity', 'policy', 'audit', 'inference', 'gateway'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** Per-service defaults: listen port, metrics port, who may call, client certificates. */
export const SERVICE_DEFAULTS: Record<
  ServiceName,
  { port: number; metricsPort: number; peers: string[]; clientCertificate: 'required' | 'optional' }
> = {
  // HTTPS for browsers and the CLI; mesh services fetch JWKS with their certificates.
  identity: {
    port: 7440,
    metricsPort: 9440,
    peers: ['gateway', 'inference', 'policy'],
    clientCertificate: 'optional',
  },
  policy: {
    port: 7441,
    metricsPort: 9441,
    // audit asks who may read the audit log (`audit:read`).
    peers: ['gateway', 'inference', 'identity', 'audit'],
    clientCertificate: 'required',
  },
  audit: {
    port: 7442,
    metricsPort: 9442,
    peers: ['inference', 'policy', 'identity', 'gateway'],
    clientCertificate: 'required',
  },
  // Partner applications may call inference directly with a bearer token; a partner client
  // certificate (spiffe://<td>/partner/...) makes its tokens certificate-bound.
  inference: {
    port: 7443,
    metricsPort: 9443,
    peers: ['gateway', 'partner/*'],
    clientCertificate: 'optional',
  },
  gateway: { port: 8443, metricsPort: 9444, peers: [], clientCertificate: 'optional' },
};

export const DEFAULTS = {
  trustDomain: 'bulwark.local',
  /** Relative to the directory of the configuration file. */
  stateDir: '.bulwark',
  host: '127.0.0.1',
  /** The audit log database, relative to `stateDir`. */
  sqliteFile: 'audit.sqlite',
  policy: {
    modelFile: 'policy/model.conf',
    policyFile: 'policy/policy.yaml',
    testFiles: [] as string[],
    watch: true,
  },
  telemetry: { logLevel: 'info' as const, metricsHost: '127.0.0.1' },
  /** Inference quotas per risk tier, per subject and model (per replica). */
  quotas: {
    low: { ratePerSec: 50, burst: 100, dailyBudget: 100_000 },
    medium: { ratePerSec: 10, burst: 20, dailyBudget: 10_000 },
    high: { ratePerSec: 2, burst: 5, dailyBudget: 1_000 },
  },
} as const;

/** The variable that names the configuration file; never read as an override. */
export const CONFIG_FILE_ENV = 'BULWARK_CONFIG';

/**
 * `BULWARK_*` variables that belong to commands, not to `bulwark.yaml`, and so are never read
 * as overrides: the file itself, the CLI's (`bulwark login|token|infer|audit`) and the
 * launcher's (`bulwark up|serve`). Any other `BULWARK_*` variable must name a key.
 */
export const COMMAND_ENV: ReadonlySet<string> = new Set([
  CONFIG_FILE_ENV,
  'BULWARK_CA_FILE',
  'BULWARK_CERTS_DIR',
  'BULWARK_DEMO_PASSWORD',
  'BULWARK_DEMO_PASSWORD_FILE',
  'BULWARK_INFERENCE_ADDRESS',
  'BULWARK_ISSUER',
  'BULWARK_JWKS_URL',
  'BULWARK_MODEL_TRUST',
  'BULWARK_PORT_BASE',
  'BULWARK_TOKEN',
  'BULWARK_TOKEN_FILE',
  'BULWARK_BIN',
  'BULWARK_BENCH_ROLE',
]);
