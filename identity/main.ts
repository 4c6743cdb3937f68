/**
 * Runs the identity broker as a process (the launcher behind `bulwark up` starts it):
 *
 *   node identity/main.ts --options-file run/identity.json
 *
 * The options file is {@link BrokerLaunchOptions} (PEMs and secrets as file paths; SQLite at
 * `databasePath`, or PostgreSQL with `postgres.urlFile`). Prints one
 * JSON line `{"issuer":"https://localhost:8443"}` on stdout when it serves; logs are pino JSON on
 * stderr. SIGTERM/SIGINT close it gracefully.
 *
 * Audit: with `audit` in the options, every record goes to the audit service over mTLS with
 * the broker's own certificate. Logins and `model:infer` tokens never wait for audit: their
 * records are queued (kept on disk while audit is unreachable, one log line when it goes and
 * one when it is back). Tokens with a privileged scope (`model:admin`, `policy:admin`,
 * `audit:read`) fail closed: issued only once audit acknowledges the record (bounded wait),
 * otherwise `503 temporarily_unavailable`.
 *
 * Traces: an HTTP SERVER span per request, continuing W3C `traceparent`, exported like every
 * service's (OTLP by the `OTEL_*` variables, or the span file `BULWARK_TELEMETRY__TRACE_FILE`).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { AuditServiceClient } from '../gen/bulwark/audit/v1/audit.ts';
import { createMeshClient } from '../mesh/kit/index.ts';
import {
  createLogger,
  createMetricsRegistry,
  createTelemetry,
  serveMetrics,
} from '../mesh/telemetry/index.ts';
import { createBufferedAuditSink, type BufferedAuditSink } from './audit-queue.ts';
import { createAuditServiceSink } from './audit-service-sink.ts';
import { createBroker } from './broker.ts';
import { IdentityError } from './errors.ts';
import { postgresUrl, resolveLaunchOptions, type BrokerLaunchOptions } from './launch-options.ts';
import { openPostgresIdentityStore } from './postgres-store.ts';

const { values } = parseArgs({ options: { 'options-file': { type: 'string' } } });
if (!values['options-file']) {
  process.stderr.write('identity: --options-file is required\n');
  process.exit(2);
}
const logger = createLogger({ service: 'identity', destination: pino.destination(2) });
try {
  const launch = JSON.parse(readFileSync(values['options-file'], 'utf8')) as BrokerLaunchOptions;
  const resolved = resolveLaunchOptions(launch);
  const url = postgresUrl(launch);
  const store = url ? await openPostgresIdentityStore({ connectionString: url }) : undefined;
  const metrics = createMetricsRegistry({ defaultLabels: { service: 'identity' } });
  const telemetry = createTelemetry({ serviceName: 'identity', registry: metrics, logger });

  let auditClient: AuditServiceClient | undefined;
  let audit: BufferedAuditSink | undefined;
  if (launch.audit) {
    const caFile = launch.tls.caFiles?.[0];
    if (!caFile) {
      throw new IdentityError(
        'ERR_IDENTITY_INVALID_OPTION',
        'audit needs tls.caFiles[0] (the mesh CA) to call the audit service over mTLS',
      );
    }
    auditClient = createMeshClient(AuditServiceClient, {
      address: launch.audit.address,
      tls: { certFile: launch.tls.certFile, keyFile: launch.tls.keyFile, caFile },
      expectedServer: launch.audit.spiffeId,
      logger,
      interceptors: [telemetry.clientInterceptor],
      channelOptions: {
        'grpc.initial_reconnect_backoff_ms': 200,
        'grpc.max_reconnect_backoff_ms': 1000,
      },
    });
    audit = createBufferedAuditSink({
      sink: createAuditServiceSink(auditClient, { deadlineMs: launch.audit.deadlineMs ?? 2000 }),
      logger,
      queueFile:
        launch.audit.queueFile ??
        (launch.databasePath ? `${launch.databasePath}.audit-queue.jsonl` : undefined),
      registry: metrics,
    });
  }

  const broker = await createBroker({
    ...resolved,
    store,
    logger,
    metrics,
    audit,
    tracing: { tracer: telemetry.tracer, propagator: telemetry.propagator },
  });
  const metricsServer =
    launch.metricsPort === undefined
      ? undefined
      : await serveMetrics(metrics, { port: launch.metricsPort });
  process.stdout.write(
    `${JSON.stringify({ issuer: broker.issuer, metrics: metricsServer?.url })}\n`,
  );
  // Workload certificates are short-lived and renewed on disk: serve the new one when it lands.
  let served = `${launch.tls.certFile}:${readFileSync(launch.tls.certFile, 'utf8')}`;
  const reload = setInterval(() => {
    try {
      const cert = readFileSync(launch.tls.certFile, 'utf8');
      if (`${launch.tls.certFile}:${cert}` === served) return;
      const { tls } = resolveLaunchOptions(launch);
      broker.updateTls(tls);
      served = `${launch.tls.certFile}:${cert}`;
      logger.info('TLS certificate reloaded');
    } catch {
      logger.warn('TLS certificate reload failed; still serving the previous one');
    }
  }, 5000);
  reload.unref();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      void broker
        .close()
        .then(() => audit?.flush())
        .then(() => {
          audit?.close();
          auditClient?.close();
        })
        .then(() => metricsServer?.close())
        .then(() => store?.close())
        .then(() => telemetry.shutdown())
        .catch(() => undefined)
        .then(() => process.exit(0));
    });
  }
} catch (err) {
  // The message names the bad option or file; causes may hold secrets and are not printed.
  process.stderr.write(`identity: ${err instanceof Error ? err.message : 'failed to start'}\n`);
  process.exit(1);
}
