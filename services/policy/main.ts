/**
 * Process entry of the policy service: maps `bulwark.yaml` to {@link createPolicyService}
 * options, serves on the mesh with mTLS and shuts down gracefully on SIGTERM/SIGINT.
 *
 * ```
 * node services/policy/main.ts [--config bulwark.yaml] [--certs <dir>] [--issuer <url>]
 *   [--jwks <url> | --jwks-file <path>] [--audience urn:bulwark:inference] [--postgres]
 * ```
 *
 * `--certs` holds `policy.crt`, `policy.key` and `ca.crt` (default `<stateDir>/certs`). The
 * broker's JWKS is fetched from `--jwks` (default `<issuer>/jwks`) and cached; when the broker
 * uses a mesh certificate, start with `NODE_EXTRA_CA_CERTS=<certs>/ca.crt`. With `--postgres`
 * the policy is read from the PostgreSQL storage in `bulwark.yaml` instead of the files.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLocalJWKSet, createRemoteJWKSet } from 'jose';
import { AuditServiceClient } from '../../gen/bulwark/audit/v1/audit.ts';
import { serviceFiles } from '../../mesh/ca/index.ts';
import { loadConfig } from '../../mesh/config/index.ts';
import { createMeshClient, runServiceProcess } from '../../mesh/kit/index.ts';
import { createLogger, createTelemetry } from '../../mesh/telemetry/index.ts';
import { createAuditAuditor } from './audit-auditor.ts';
import { createFileSource } from './policy-source.ts';
import { createPostgresSource } from './postgres-source.ts';
import { createPolicyService } from './service.ts';

const { values: args } = parseArgs({
  options: {
    config: { type: 'string' },
    certs: { type: 'string' },
    issuer: { type: 'string' },
    jwks: { type: 'string' },
    'jwks-file': { type: 'string' },
    audience: { type: 'string', default: 'urn:bulwark:inference' },
    postgres: { type: 'boolean', default: false },
  },
});

const config = loadConfig(args.config ? { file: args.config } : {});
const self = config.services.policy;
const logger = createLogger({ service: 'policy', level: config.telemetry.logLevel });
const telemetry = createTelemetry({ serviceName: 'policy' });
const tls = serviceFiles(args.certs ?? join(config.stateDir, 'certs'), 'policy');

const issuer = args.issuer ?? config.services.identity.publicUrl;
if (!issuer) {
  logger.fatal('no token issuer: pass --issuer or set services.identity.publicUrl in bulwark.yaml');
  process.exit(2);
}
const keys = args['jwks-file']
  ? createLocalJWKSet(JSON.parse(readFileSync(args['jwks-file'], 'utf8')))
  : createRemoteJWKSet(new URL(args.jwks ?? `${issuer.replace(/\/$/, '')}/jwks`), {
      cooldownDuration: 30_000,
      cacheMaxAge: 600_000,
    });

let source;
if (args.postgres) {
  if (config.storage.kind !== 'postgres') {
    logger.fatal('--postgres needs storage.kind: postgres in bulwark.yaml');
    process.exit(2);
  }
  source = createPostgresSource({ url: config.storage.url, logger });
} else {
  source = createFileSource({
    modelPath: config.policy.modelFile,
    policyPath: config.policy.policyFile,
  });
}

const auditClient = createMeshClient(AuditServiceClient, {
  address: config.services.audit.address,
  tls,
  expectedServer: config.services.audit.spiffeId,
  logger,
  interceptors: [telemetry.clientInterceptor],
  channelOptions: {
    'grpc.initial_reconnect_backoff_ms': 200,
    // A restarted peer must be in use again within 2 s of being ready: cap the backoff
    // (grpc-js adds up to 20% jitter) well below that.
    'grpc.max_reconnect_backoff_ms': 1000,
  },
});
const auditor = createAuditAuditor({
  client: auditClient,
  queueDir: join(config.stateDir, 'policy-audit-queue'),
  logger,
  registry: telemetry.registry,
});

try {
  const policy = await createPolicyService({
    source,
    logger,
    auditor,
    tokens: { issuer, audience: args.audience, keys },
    watch: config.policy.watch,
    registry: telemetry.registry,
  });
  const { address } = await runServiceProcess({
    self,
    tls,
    logger,
    telemetry,
    metricsHost: config.telemetry.metricsHost,
    register: (server) => policy.addTo(server),
    close: async () => {
      await policy.close();
      auditClient.close();
    },
  });
  logger.info({ address, revision: policy.store.revision }, 'policy service ready');
} catch (err) {
  logger.fatal(
    { err },
    `policy service cannot start: ${err instanceof Error ? err.message : String(err)}`,
  );
  process.exit(1);
}
