/**
 * Process entry of the audit service: maps `bulwark.yaml` (and a few flags) to
 * {@link createAuditService} options, serves on the mesh with mTLS, shuts down gracefully on
 * SIGTERM/SIGINT. Prints one JSON log line `audit service ready` with the bound `address`.
 *
 * ```
 * node services/audit/main.ts [--config bulwark.yaml] [--certs <dir>] [--port <n>]
 *   [--sqlite <file> | --postgres <url>] [--key <file>] [--readers <spiffe-id,...>]
 *   [--issuer <url>] [--jwks <url> | --jwks-file <path>] [--no-policy] [--no-verify-on-start]
 * ```
 *
 * Reads (`read` on `audit:log`) are decided by the policy service named in bulwark.yaml
 * (`services.policy`): callers with a bearer token for `urn:bulwark:audit` from the broker
 * (`--issuer`, default `services.identity.publicUrl`; JWKS from `--jwks`, default
 * `<issuer>/jwks`, cached) are their token's subject, others their SPIFFE ID. `--readers` lists
 * extra SPIFFE IDs that always read everything; `--no-policy` leaves only them. Without an
 * issuer, bearer tokens are refused and only workloads are asked about. The JWKS fetch trusts
 * the mesh CA through `NODE_EXTRA_CA_CERTS` (as `bulwark up` sets it).
 *
 *
 * `--certs` holds `audit.crt`, `audit.key` and `ca.crt` (default `<stateDir>/certs`); the
 * checkpoint key defaults to `<stateDir>/audit-checkpoint.key` (created, 0600).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLocalJWKSet, createRemoteJWKSet } from 'jose';
import { PolicyServiceClient } from '../../gen/bulwark/policy/v1/policy.ts';
import { serviceFiles } from '../../mesh/ca/index.ts';
import { loadConfig } from '../../mesh/config/index.ts';
import { createMeshClient, runServiceProcess } from '../../mesh/kit/index.ts';
import { createLogger, createTelemetry } from '../../mesh/telemetry/index.ts';
import { createTokenVerifier } from '../policy/token-verifier.ts';
import { policyReadAuthorizer, promiseDecide } from './policy-read-authorizer.ts';
import { createAuditService } from './service.ts';
import { openPostgresStore } from './store/postgres-store.ts';
import { openSqliteStore } from './store/sqlite-store.ts';
import type { AuditStore } from './store/types.ts';

const { values: args } = parseArgs({
  options: {
    config: { type: 'string' },
    certs: { type: 'string' },
    port: { type: 'string' },
    sqlite: { type: 'string' },
    postgres: { type: 'string' },
    key: { type: 'string' },
    readers: { type: 'string' },
    issuer: { type: 'string' },
    jwks: { type: 'string' },
    'jwks-file': { type: 'string' },
    'no-policy': { type: 'boolean', default: false },
    'no-verify-on-start': { type: 'boolean', default: false },
    'no-metrics': { type: 'boolean', default: false },
  },
});

const config = loadConfig(args.config ? { file: args.config } : {});
const self = config.services.audit;
const logger = createLogger({ service: 'audit', level: config.telemetry.logLevel });
const telemetry = createTelemetry({ serviceName: 'audit' });
const tls = serviceFiles(args.certs ?? join(config.stateDir, 'certs'), 'audit');

async function openStore(): Promise<AuditStore> {
  // Off by default: on a busy machine the thread cost more CPU per record than it saved.
  if (args.sqlite) return openSqliteStore({ path: args.sqlite });
  if (args.postgres) return openPostgresStore({ connectionString: args.postgres });
  if (config.storage.kind === 'postgres') {
    const url = new URL(config.storage.url);
    if (config.storage.passwordFile)
      url.password = readFileSync(config.storage.passwordFile, 'utf8').trim();
    return openPostgresStore({ connectionString: url.toString() });
  }
  return openSqliteStore({ path: config.storage.path });
}

/** The policy-backed read authorizer, and the client to close on shutdown. */
function policyReads() {
  if (args['no-policy']) return undefined;
  const issuer = args.issuer ?? config.services.identity.publicUrl;
  const keys = args['jwks-file']
    ? createLocalJWKSet(JSON.parse(readFileSync(args['jwks-file'], 'utf8')))
    : issuer
      ? createRemoteJWKSet(new URL(args.jwks ?? `${issuer.replace(/\/$/, '')}/jwks`), {
          cooldownDuration: 30_000,
          cacheMaxAge: 600_000,
        })
      : undefined;
  const client = createMeshClient(PolicyServiceClient, {
    address: config.services.policy.address,
    tls,
    expectedServer: config.services.policy.spiffeId,
    logger,
    interceptors: [telemetry.clientInterceptor],
    channelOptions: {
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 1000,
    },
  });
  logger.info(
    { policy: config.services.policy.address, issuer: issuer ?? null },
    issuer && keys
      ? 'audit reads: policy decides (bearer tokens for urn:bulwark:audit, or workload identity)'
      : 'audit reads: policy decides for workloads; no token issuer, so bearer tokens are refused',
  );
  return {
    client,
    authorizer: policyReadAuthorizer({
      decide: promiseDecide(client),
      ...(issuer && keys
        ? { tokens: createTokenVerifier({ issuer, audience: 'urn:bulwark:audit', keys }) }
        : {}),
      meshOrg: config.trustDomain,
      logger,
    }),
  };
}

try {
  const store = await openStore();
  const reads = policyReads();
  const audit = await createAuditService({
    store,
    signingKeyFile: args.key ?? join(config.stateDir, 'audit-checkpoint.key'),
    trustDomain: config.trustDomain,
    logger,
    readers: args.readers
      ? args.readers
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : [],
    ...(reads ? { readAuthorizer: reads.authorizer } : {}),
    verifyOnStart: !args['no-verify-on-start'],
    registry: telemetry.registry,
  });
  const { address } = await runServiceProcess({
    self,
    tls,
    ...(args.port !== undefined ? { port: Number(args.port) } : {}),
    logger,
    telemetry,
    metricsHost: args['no-metrics'] ? false : config.telemetry.metricsHost,
    register: (server) => audit.addTo(server),
    close: async () => {
      await audit.close();
      reads?.client.close();
    },
  });
  logger.info(
    {
      address,
      treeSize: audit.log.size(),
      origin: audit.log.origin,
      verifierKey: audit.log.verifierKey,
    },
    'audit service ready',
  );
} catch (err) {
  logger.fatal(
    { err },
    `audit service cannot start: ${err instanceof Error ? err.message : String(err)}`,
  );
  process.exit(1);
}
