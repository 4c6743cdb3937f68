import { isAbsolute, join, relative, resolve as resolvePath } from 'node:path';
import { SERVICE_NAMES, type BulwarkConfig, type ServiceName } from '../config/index.ts';

/** Where `bulwark up` keeps what it generates, all under the state directory. */
export interface StateLayout {
  stateDir: string;
  /** Mesh CA and workload certificates (`ca.crt`, `<service>.crt`/`.key`). */
  certsDir: string;
  /** Generated secrets (0600): demo client secrets, the demo password. */
  secretsDir: string;
  /** Files written for the child processes (the resolved configuration, broker options). */
  runDir: string;
  /** The resolved `bulwark.yaml` every child process reads. */
  runConfigFile: string;
}

/** A demo partner IdP the launcher runs for an organisation whose issuer is on this machine. */
export interface DemoIdpPlan {
  org: string;
  host: string;
  port: number;
  issuer: string;
}

/** What `bulwark up` runs: the configuration as rewritten for this run, plus the layout. */
export interface MeshPlan extends StateLayout {
  config: BulwarkConfig;
  idps: DemoIdpPlan[];
}

/** Options that change the configuration for one run. */
export interface PlanOptions {
  /** Replaces `stateDir`; paths the file placed under the old state directory follow it. */
  stateDir?: string;
  /**
   * Moves every listener to a block of ports starting here (for tests and a second mesh on
   * one machine): identity +0, policy +1, audit +2, inference +3, gateway +4, their metrics
   * +10..+14, demo IdPs +20, +21, ...
   */
  portBase?: number;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** True when a URL points at this machine, so `bulwark up` should run its server. */
export function isLoopbackUrl(url: string): boolean {
  try {
    return LOOPBACK.has(new URL(url).hostname);
  } catch {
    return false;
  }
}

/** The directories and files of a state directory. */
export function stateLayout(stateDir: string): StateLayout {
  const runDir = join(stateDir, 'run');
  return {
    stateDir,
    certsDir: join(stateDir, 'certs'),
    secretsDir: join(stateDir, 'secrets'),
    runDir,
    runConfigFile: join(runDir, 'bulwark.yaml'),
  };
}

function withPort(url: string, port: number): string {
  const u = new URL(url);
  u.port = String(port);
  return u.toString().replace(/\/$/, '');
}

/**
 * Rewrites a loaded configuration for one run of `bulwark up` (state directory, ports) and
 * lists the demo IdPs to start. Pure: it reads and writes nothing.
 *
 * @example
 * ```ts
 * const plan = planMesh(loadConfig(), { stateDir: '/tmp/mesh', portBase: 21000 });
 * plan.config.services.audit.address; // '127.0.0.1:21002'
 * ```
 */
export function planMesh(loaded: BulwarkConfig, options: PlanOptions = {}): MeshPlan {
  const stateDir = options.stateDir ? resolvePath(options.stateDir) : loaded.stateDir;
  const rebase = (path: string) => {
    const rel = relative(loaded.stateDir, path);
    return rel && !rel.startsWith('..') && !isAbsolute(rel) ? join(stateDir, rel) : path;
  };
  const base = options.portBase;
  if (base !== undefined && !(Number.isInteger(base) && base >= 1024 && base <= 65_000)) {
    throw new RangeError(`port base must be an integer between 1024 and 65000, got ${base}`);
  }

  const services = { ...loaded.services };
  SERVICE_NAMES.forEach((name: ServiceName, i) => {
    const s = loaded.services[name];
    if (base === undefined) return;
    const port = base + i;
    services[name] = {
      ...s,
      port,
      address: `${s.host.includes(':') && !s.host.startsWith('[') ? `[${s.host}]` : s.host}:${port}`,
      metricsPort: base + 10 + i,
      ...(s.publicUrl && isLoopbackUrl(s.publicUrl)
        ? { publicUrl: withPort(s.publicUrl, port) }
        : {}),
    };
  });

  const idps: DemoIdpPlan[] = [];
  const organisations = loaded.organisations.map((org) => {
    if (!isLoopbackUrl(org.issuer))
      return { ...org, clientSecretFile: rebase(org.clientSecretFile) };
    const u = new URL(org.issuer);
    const port = base !== undefined ? base + 20 + idps.length : Number(u.port || 443);
    const issuer = withPort(org.issuer, port);
    idps.push({ org: org.id, host: u.hostname.replace(/^\[|\]$/g, ''), port, issuer });
    return {
      ...org,
      issuer,
      clientSecretFile: rebase(org.clientSecretFile),
      trustedIssuers: org.trustedIssuers.map((t) =>
        t.issuer === org.issuer ? { ...t, issuer } : t,
      ),
    };
  });

  const config: BulwarkConfig = {
    ...loaded,
    stateDir,
    services,
    organisations,
    models: loaded.models.map((m) => ({ ...m, bundleDir: rebase(m.bundleDir) })),
    storage:
      loaded.storage.kind === 'sqlite'
        ? { kind: 'sqlite', path: rebase(loaded.storage.path) }
        : loaded.storage,
    telemetry: {
      ...loaded.telemetry,
      ...(loaded.telemetry.traceFile ? { traceFile: rebase(loaded.telemetry.traceFile) } : {}),
    },
  };
  return { ...stateLayout(stateDir), config, idps };
}
