import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EMBEDDED_CONFIG_PATH, loadConfig } from '../config/index.ts';
import { caFiles } from '../ca/index.ts';
import { configEnv } from './config-env.ts';
import { LauncherError } from './launcher-error.ts';
import { planMesh, type MeshPlan } from './plan.ts';
import { assertPortsFree, listenersOf } from './ports.ts';
import { httpsProbe, meshProbe, type Probe } from './probes.ts';
import { renderRunConfig } from './run-config.ts';
import { ensureState, renewCertificates, type MeshState } from './state.ts';
import {
  createSupervisor,
  type ProcessSpec,
  type Supervisor,
  type SupervisorEvent,
} from './supervisor.ts';

const BULWARK_BIN = fileURLToPath(new URL('../../bin/bulwark.js', import.meta.url));

/** Options of {@link startMesh} (`bulwark up`). */
export interface UpOptions {
  /** `bulwark.yaml` to read. Default `$BULWARK_CONFIG`, `./bulwark.yaml`, the embedded one. */
  configFile?: string;
  /** State directory (CA, certificates, secrets, databases, models, logs). Default: `stateDir`. */
  stateDir?: string;
  /** Move every listener to a block of ports from here (see `PlanOptions.portBase`). */
  portBase?: number;
  /** Variables for `BULWARK_*` overrides and the children's environment. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Start-up progress and supervision events, one line each (stderr). */
  progress?: (line: string) => void;
  /** How long each service may take to become healthy. Default 60 s. */
  readyTimeoutMs?: number;
  /** First restart delay after a crash (doubles per crash). Default 250 ms. */
  initialBackoffMs?: number;
  /** Aborting it while starting stops what was started and rejects (Ctrl-C during start-up). */
  signal?: AbortSignal;
}

/** One supervised process of the running mesh. */
export interface RunningService {
  name: string;
  /** What clients connect to. */
  address: string;
  kind: 'https' | 'grpc';
  logFile: string;
}

/** The mesh `bulwark up` started. */
export interface RunningMesh {
  plan: MeshPlan;
  state: MeshState;
  services: RunningService[];
  supervisor: Supervisor;
  /** PIDs of the running processes, by service name. */
  pids(): Record<string, number | undefined>;
  /** Stops every process (last started first) and the probes; idempotent. */
  stop(): Promise<void>;
}

/** Environment of a child: the caller's, minus `BULWARK_*` (the run configuration says it all). */
function childEnv(env: NodeJS.ProcessEnv, plan: MeshPlan): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (!k.startsWith('BULWARK_')) out[k] = v;
  out.NODE_EXTRA_CA_CERTS = caFiles(plan.certsDir).certFile;
  if (plan.config.telemetry.traceFile)
    out.BULWARK_TELEMETRY__TRACE_FILE = plan.config.telemetry.traceFile;
  return out;
}

/** The message of a pino JSON line, or the line itself. */
function messageOf(line: string): string {
  try {
    const parsed = JSON.parse(line) as { msg?: unknown };
    return typeof parsed.msg === 'string' ? parsed.msg : line;
  } catch {
    return line;
  }
}

/**
 * Starts the local mesh: state on first run, then the demo partner IdPs, the identity broker,
 * audit, policy and inference as supervised processes, each healthy before the next starts.
 * Crashed services are restarted with exponential backoff. Call `stop()` on SIGINT/SIGTERM.
 *
 * @example
 * ```ts
 * const mesh = await startMesh({ stateDir: '.bulwark', progress: (l) => console.error(l) });
 * process.once('SIGINT', () => void mesh.stop());
 * ```
 */
export async function startMesh(options: UpOptions = {}): Promise<RunningMesh> {
  const env = options.env ?? process.env;
  const progress = options.progress ?? (() => {});
  const loaded = loadConfig({
    ...(options.configFile ? { file: options.configFile } : {}),
    env: configEnv(env),
  });
  // The embedded demo file lives inside the package (perhaps read-only, under node_modules):
  // its state goes to ./.bulwark in the working directory instead.
  const stateDir =
    options.stateDir ??
    (loaded.source === EMBEDDED_CONFIG_PATH &&
    env.BULWARK_STATE_DIR === undefined &&
    resolvePath('.bulwark') !== loaded.stateDir
      ? resolvePath('.bulwark')
      : undefined);
  const plan = planMesh(loaded, {
    ...(stateDir ? { stateDir } : {}),
    ...(options.portBase !== undefined ? { portBase: options.portBase } : {}),
  });
  const { config } = plan;
  progress(`configuration: ${config.source ?? 'embedded defaults'}; state: ${plan.stateDir}`);
  await assertPortsFree(listenersOf(plan));
  const state = await ensureState(plan, progress);
  await mkdir(plan.runDir, { recursive: true, mode: 0o700 });
  await writeFile(plan.runConfigFile, renderRunConfig(config), { mode: 0o600 });
  // The children read this file: refuse now, with the key named, if it does not load.
  loadConfig({ file: plan.runConfigFile, env: {} });

  const logDir = join(plan.stateDir, 'logs');
  await mkdir(logDir, { recursive: true, mode: 0o700 });
  const ca = caFiles(plan.certsDir).certFile;
  const common = ['--config', plan.runConfigFile, '--certs', plan.certsDir, '--exit-with-parent'];
  const probes: Probe[] = [];
  const services: RunningService[] = [];
  const specs: ProcessSpec[] = [];
  const cEnv = childEnv(env, plan);
  const add = (service: RunningService, args: string[], probe: Probe) => {
    probes.push(probe);
    services.push(service);
    specs.push({
      name: service.name,
      args: [BULWARK_BIN, 'serve', ...args, ...common],
      env: cEnv,
      ready: () => probe.check(),
    });
  };
  for (const idp of plan.idps) {
    add(
      {
        name: `idp-${idp.org}`,
        address: idp.issuer,
        kind: 'https',
        logFile: join(logDir, `idp-${idp.org}.log`),
      },
      ['demo-idp', '--org', idp.org, '--password-file', state.demoPasswordFile],
      httpsProbe(`${idp.issuer}/.well-known/openid-configuration`, ca),
    );
  }
  const identity = config.services.identity;
  const issuer = (identity.publicUrl ?? `https://${identity.address}`).replace(/\/$/, '');
  add(
    { name: 'identity', address: issuer, kind: 'https', logFile: join(logDir, 'identity.log') },
    ['identity'],
    httpsProbe(`${issuer}/.well-known/openid-configuration`, ca),
  );
  for (const name of ['audit', 'policy', 'inference'] as const) {
    const s = config.services[name];
    add(
      { name, address: s.address, kind: 'grpc', logFile: join(logDir, `${name}.log`) },
      [name],
      meshProbe(s, config.trustDomain, plan.certsDir),
    );
  }

  const supervisor = createSupervisor({
    specs,
    readyTimeoutMs: options.readyTimeoutMs ?? 60_000,
    initialBackoffMs: options.initialBackoffMs ?? 250,
  });
  const logs = new Map<string, WriteStream>(
    services.map((s) => [s.name, createWriteStream(s.logFile, { flags: 'a', mode: 0o600 })]),
  );
  const lastLine = new Map<string, string>();
  const readyOnce = new Set<string>();
  let failStart: ((err: Error) => void) | undefined;
  const startupCrashes = new Map<string, number>();
  supervisor.on('event', (e: SupervisorEvent) => {
    switch (e.type) {
      case 'output':
        logs.get(e.name)?.write(`${e.line}\n`);
        if (e.line.trim()) lastLine.set(e.name, e.line);
        break;
      case 'started':
        progress(`${e.name}: started (pid ${e.pid})`);
        break;
      case 'ready':
        readyOnce.add(e.name);
        progress(`${e.name}: healthy`);
        break;
      case 'exited': {
        const last = lastLine.get(e.name);
        progress(
          `${e.name}: exited (${e.signal ? `signal ${e.signal}` : `code ${e.code}`})` +
            (last && e.code ? `; last log: ${messageOf(last)}` : ''),
        );
        if (!readyOnce.has(e.name)) {
          const n = (startupCrashes.get(e.name) ?? 0) + 1;
          startupCrashes.set(e.name, n);
          if (n >= 3) {
            failStart?.(
              new LauncherError(
                'ERR_LAUNCHER_START_FAILED',
                `${e.name} exited ${n} times while starting` +
                  (last ? `: ${messageOf(last)}` : '') +
                  `; see ${join(logDir, `${e.name}.log`)}`,
              ),
            );
          }
        }
        break;
      }
      case 'restarting':
        progress(`${e.name}: restarting in ${e.delayMs} ms (attempt ${e.attempt})`);
        break;
    }
  });

  let stopped: Promise<void> | undefined;
  const timers: { renew?: NodeJS.Timeout } = {};
  const stop = () => {
    stopped ??= (async () => {
      if (timers.renew) clearInterval(timers.renew);
      await supervisor.stop();
      for (const p of probes) p.close();
      await Promise.all(
        [...logs.values()].map((s) => new Promise<void>((resolve) => s.end(resolve))),
      );
    })();
    return stopped;
  };

  const onAbort = () =>
    failStart?.(new LauncherError('ERR_LAUNCHER_START_FAILED', 'interrupted while starting'));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await Promise.race([
      supervisor.start(),
      new Promise<never>((_, reject) => {
        failStart = reject;
        if (options.signal?.aborted) onAbort();
      }),
    ]);
  } catch (err) {
    await stop();
    if (err instanceof LauncherError) throw err;
    throw new LauncherError(
      'ERR_LAUNCHER_START_FAILED',
      `${err instanceof Error ? err.message : String(err)} (logs in ${logDir})`,
      { cause: err },
    );
  }
  failStart = undefined;
  options.signal?.removeEventListener('abort', onAbort);
  // Workload certificates live 24 h; reissue well before expiry (services reload them).
  timers.renew = setInterval(() => {
    void renewCertificates(plan, state.ca).then(
      (issued) => issued.length && progress(`renewed certificates: ${issued.join(', ')}`),
      (err: Error) => progress(`certificate renewal failed: ${err.message}`),
    );
  }, 3600_000);
  timers.renew.unref();
  return { plan, state, services, supervisor, pids: () => supervisor.pids(), stop };
}
