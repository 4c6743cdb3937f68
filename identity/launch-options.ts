import { readFileSync } from 'node:fs';
import { IdentityError } from './errors.ts';
import type { BrokerClientConfig, BrokerOptions, OrganisationConfig } from './options.ts';

/**
 * The broker's options as a process receives them (JSON, written by the launcher): the same
 * as {@link BrokerOptions} except that every PEM and secret is a file path, so no secret sits
 * in a command line or an environment variable.
 */
export interface BrokerLaunchOptions extends Omit<
  BrokerOptions,
  'tls' | 'organisations' | 'clients' | 'upstream' | 'audit' | 'logger' | 'now'
> {
  tls: { certFile: string; keyFile: string; caFiles?: string[] };
  organisations: (Omit<OrganisationConfig, 'clientSecret'> & { clientSecretFile: string })[];
  clients: (Omit<BrokerClientConfig, 'clientSecret'> & { clientSecretFile?: string })[];
  upstream?: { caFiles?: string[]; timeoutMs?: number };
  /** Serve Prometheus `/metrics` on this loopback port (0: any free port). Default: none. */
  metricsPort?: number;
  /** PostgreSQL instead of SQLite: a file holding the connection URL (it may carry a password). */
  postgres?: { urlFile: string };
  /**
   * The audit service (`bulwark.audit.v1.AuditService`), called over mTLS with the broker's
   * own certificate (`tls.certFile`/`keyFile`, trusting `tls.caFiles[0]`). Default: none,
   * records are only logged.
   */
  audit?: BrokerAuditTarget;
}

/** Where `identity/main.ts` sends audit records; see {@link createBufferedAuditSink}. */
export interface BrokerAuditTarget {
  /** `host:port` of the audit service. */
  address: string;
  /** SPIFFE ID the audit service must present, e.g. `spiffe://bulwark.local/svc/audit`. */
  spiffeId: string;
  /** Queue kept here while audit is unreachable. Default: next to `databasePath`, else none. */
  queueFile?: string;
  /** Deadline of each append. Default 2000 ms. */
  deadlineMs?: number;
}

function read(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new IdentityError('ERR_IDENTITY_INVALID_OPTION', `${what}: cannot read ${file}`, {
      cause: err,
    });
  }
}

/** Reads the PostgreSQL URL file, when the launch options name one. */
export function postgresUrl(launch: BrokerLaunchOptions): string | undefined {
  return launch.postgres ? read(launch.postgres.urlFile, 'postgres.urlFile').trim() : undefined;
}

/** Reads every referenced file and returns options for `createBroker` (without a store). */
export function resolveLaunchOptions(launch: BrokerLaunchOptions): BrokerOptions {
  const { tls, organisations, clients, upstream, ...rest } = launch;
  delete rest.postgres;
  delete rest.metricsPort;
  // The audit target becomes a sink in main.ts: it is not a broker option itself.
  delete rest.audit;
  return {
    ...(rest as Omit<typeof rest, 'audit'>),
    tls: {
      cert: read(tls.certFile, 'tls.certFile'),
      key: read(tls.keyFile, 'tls.keyFile'),
      ca: (tls.caFiles ?? []).map((f, i) => read(f, `tls.caFiles[${i}]`)),
    },
    organisations: organisations.map(({ clientSecretFile, ...org }, i) => ({
      ...org,
      clientSecret: read(clientSecretFile, `organisations[${i}].clientSecretFile`).trim(),
    })),
    clients: clients.map(({ clientSecretFile, ...client }, i) => ({
      ...client,
      ...(clientSecretFile
        ? { clientSecret: read(clientSecretFile, `clients[${i}].clientSecretFile`).trim() }
        : {}),
    })),
    upstream: {
      ca: (upstream?.caFiles ?? []).map((f, i) => read(f, `upstream.caFiles[${i}]`)),
      timeoutMs: upstream?.timeoutMs,
    },
  };
}
