/**
 * Process entry of the audit service: maps `bulwark.yaml` (and a few flags) to
 * {@link createAuditService} options, serves on the mesh with mTLS, shuts down gracefully on
 * SIGTERM/SIGINT. Prints one JSON log line `audit service ready` with the bound `address`.
 *
 * ```
 * node services/audit/main.ts [--config bulwark.yaml] [--certs <dir>] [--port <n>]
 *   [--sqlite <file> | --postgres <url>] [--key <file>] [--readers <spiffe-id,...>]
 *   [--no-verify-on-start]
 * ```
 *
 * `--certs` holds `audit.crt`, `audit.key` and `ca.crt` (default `<stateDir>/certs`); the
 * checkpoint key defaults to `<stateDir>/audit-checkpoint.key` (created, 0600).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { serviceFiles } from '../../mesh/ca/index.ts';
import { loadConfig } from '../../mesh/config/index.ts';
import { runServiceProcess } from '../../mesh/kit/index.ts';
import { createLogger, createTelemetry } from '../../mesh/telemetry/index.ts';
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

try {
  const store = await openStore();
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
    close: () => audit.close(),
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
