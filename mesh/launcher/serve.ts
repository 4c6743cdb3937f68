import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { loadConfig, type BulwarkConfig } from '../config/index.ts';
import { caFiles, serviceFiles } from '../ca/index.ts';
import { brokerLaunchOptions } from './broker-options.ts';
import { configEnv, isConfigVariable } from './config-env.ts';
import { LauncherError } from './launcher-error.ts';

/** What `bulwark serve` can run. */
export const SERVE_TARGETS = ['identity', 'policy', 'audit', 'inference', 'demo-idp'] as const;
export type ServeTarget = (typeof SERVE_TARGETS)[number];

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Entry points of the services, relative to the package root. */
export const ENTRY_POINTS: Record<ServeTarget, string> = {
  identity: join(ROOT, 'identity/main.ts'),
  'demo-idp': join(ROOT, 'identity/demo-idp/main.ts'),
  policy: join(ROOT, 'services/policy/main.ts'),
  audit: join(ROOT, 'services/audit/main.ts'),
  inference: join(ROOT, 'services/inference/main.ts'),
};

/** Options of `bulwark serve <service>`; everything else comes from `bulwark.yaml` + `BULWARK_*`. */
export interface ServeOptions {
  service: ServeTarget;
  /** Organisation of a demo IdP (`demo-idp` only). */
  org?: string;
  configFile?: string;
  stateDir?: string;
  /** Certificates (`ca.crt`, `<service>.crt`/`.key`). Default: see {@link resolveCertsDir}. */
  certsDir?: string;
  port?: number;
  /** Broker JWKS URL for policy/inference when the issuer URL is not reachable from them. */
  jwks?: string;
  /** Model signer public keys trusted by inference. Default: see {@link planServe}. */
  trust?: string[];
  /** Demo IdP password file. Default `$BULWARK_DEMO_PASSWORD_FILE`, `<stateDir>/secrets/demo-password`. */
  passwordFile?: string;
  /**
   * Broker only: a file holding the PostgreSQL URL (it may carry the password) to keep the
   * broker's state in PostgreSQL instead of SQLite, so several replicas can share it.
   * Default `$BULWARK_IDENTITY_POSTGRES_URL_FILE`; without either, SQLite under `stateDir`.
   */
  postgresUrlFile?: string;
  env?: NodeJS.ProcessEnv;
  /**
   * Stop (SIGTERM to itself) when the parent process goes away: `bulwark up` sets this so that
   * a launcher killed with SIGKILL leaves no orphaned services behind.
   */
  exitWithParent?: boolean;
}

/** What to run: the entry point, its arguments, variables to set and files to write first. */
export interface ServePlan {
  entry: string;
  args: string[];
  env: Record<string, string>;
  /** Mesh CA to trust for outgoing HTTPS (the broker's JWKS). */
  caFile?: string;
  files: { path: string; content: string; mode: number }[];
  /** Lines worth telling the operator (trusted keys, adjusted model paths). */
  notes: string[];
}

/** The directory container secrets are mounted at (docker compose, Kubernetes). */
export const SECRETS_MOUNT = '/run/secrets';

/**
 * Where a service finds its certificates: `--certs`, else `$BULWARK_CERTS_DIR`, else
 * `<stateDir>/certs` when it holds `ca.crt`, else `/run/secrets` when it holds `ca.crt`
 * (compose and Kubernetes mount them there), else `<stateDir>/certs`.
 */
export function resolveCertsDir(
  config: BulwarkConfig,
  given: string | undefined,
  env: NodeJS.ProcessEnv,
): string {
  if (given) return resolvePath(given);
  if (env.BULWARK_CERTS_DIR) return resolvePath(env.BULWARK_CERTS_DIR);
  const own = join(config.stateDir, 'certs');
  if (existsSync(caFiles(own).certFile)) return own;
  if (existsSync(caFiles(SECRETS_MOUNT).certFile)) return SECRETS_MOUNT;
  return own;
}

function envKey(...keys: string[]): string {
  return `BULWARK_${keys.map((k) => k.replace(/[-.]/g, '_').toUpperCase()).join('__')}`;
}

const isBundle = (dir: string) => existsSync(join(dir, 'manifest.json'));

function versionDirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((d) => d.isDirectory() && isBundle(join(dir, d.name)))
      .map((d) => d.name)
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  } catch {
    return [];
  }
}

/**
 * Works out how to run one service from `bulwark.yaml`: pure apart from reading the
 * configuration and looking at which files exist.
 */
export function planServe(options: ServeOptions): ServePlan {
  const env = { ...(options.env ?? process.env) };
  const extra: Record<string, string> = {};
  if (options.stateDir) extra.BULWARK_STATE_DIR = resolvePath(options.stateDir);
  if (options.configFile) extra.BULWARK_CONFIG = resolvePath(options.configFile);
  const config = loadConfig({ env: configEnv({ ...env, ...extra }) });
  const certsDir = resolveCertsDir(config, options.certsDir, env);
  const ca = caFiles(certsDir).certFile;
  if (!existsSync(ca)) {
    throw new LauncherError(
      'ERR_LAUNCHER_STATE',
      `no mesh CA certificate at ${ca}; run \`bulwark up\` once, or \`bulwark ca init\` and ` +
        '`bulwark ca issue <service>`, or pass --certs <dir>',
    );
  }
  const { service } = options;
  const notes: string[] = [];
  const files: ServePlan['files'] = [];
  let args: string[] = [];

  if (service !== 'identity' && service !== 'demo-idp') {
    const own = serviceFiles(certsDir, service);
    if (!existsSync(own.certFile) || !existsSync(own.keyFile)) {
      throw new LauncherError(
        'ERR_LAUNCHER_STATE',
        `no certificate for ${service} in ${certsDir} (${service}.crt and ${service}.key); ` +
          `issue one with \`bulwark ca issue ${service} --dir ${certsDir}\``,
      );
    }
    if (options.port !== undefined)
      extra[envKey('services', service, 'port')] = String(options.port);
    args = ['--certs', certsDir];
  }

  switch (service) {
    case 'identity': {
      if (options.port !== undefined)
        extra[envKey('services', 'identity', 'port')] = String(options.port);
      const launch = brokerLaunchOptions(
        options.port !== undefined ? loadConfig({ env: configEnv({ ...env, ...extra }) }) : config,
        certsDir,
      );
      const postgres = options.postgresUrlFile ?? env.BULWARK_IDENTITY_POSTGRES_URL_FILE;
      if (postgres) {
        // Only the path: the broker reads the URL (and its password) itself.
        delete launch.databasePath;
        launch.postgres = { urlFile: resolvePath(postgres) };
        notes.push(`broker state in PostgreSQL (URL from ${launch.postgres.urlFile})`);
      }
      const file = join(config.stateDir, 'run', 'identity.json');
      // Paths only, no secrets: the broker reads each secret from its own file.
      files.push({ path: file, content: `${JSON.stringify(launch, null, 2)}\n`, mode: 0o600 });
      args = ['--options-file', file];
      break;
    }
    case 'demo-idp': {
      const org = config.organisations.find((o) => o.id === options.org);
      if (!options.org || !org) {
        const known = config.organisations.map((o) => o.id).join(', ') || 'none';
        throw new LauncherError(
          'ERR_LAUNCHER_INVALID_OPTION',
          `demo-idp needs an organisation from bulwark.yaml (known: ${known}), got ${options.org ?? 'none'}`,
        );
      }
      const issuer = new URL(org.issuer);
      const host = issuer.hostname.replace(/^\[|\]$/g, '');
      const loopback = ['127.0.0.1', 'localhost', '::1'].includes(host);
      const port = options.port ?? Number(issuer.port || 443);
      const broker = (
        config.services.identity.publicUrl ?? `https://${config.services.identity.address}`
      ).replace(/\/$/, '');
      args = [
        '--org',
        org.id,
        // A name in the issuer (compose: https://acme:7451) is this container: listen everywhere.
        '--host',
        loopback ? host : '0.0.0.0',
        '--port',
        String(port),
        '--client-id',
        org.clientId,
        '--client-secret-file',
        org.clientSecretFile,
        '--redirect-uri',
        `${broker}/login/callback`,
      ];
      // Listening everywhere, it must still name itself as the broker knows it (discovery checks).
      if (!loopback) args.push('--issuer', org.issuer);
      const tls = serviceFiles(certsDir, org.id);
      if (existsSync(tls.certFile) && existsSync(tls.keyFile)) {
        args.push('--cert-file', tls.certFile, '--key-file', tls.keyFile);
      }
      const password =
        options.passwordFile ??
        env.BULWARK_DEMO_PASSWORD_FILE ??
        [
          join(config.stateDir, 'secrets', 'demo-password'),
          join(SECRETS_MOUNT, 'demo-password'),
        ].find((f) => existsSync(f));
      if (password) args.push('--password-file', password);
      const backend = join(config.stateDir, 'secrets', `${org.id}-backend-client-secret`);
      if (existsSync(backend)) {
        args.push(
          '--service-client-id',
          `${org.id}-backend`,
          '--service-client-secret-file',
          backend,
        );
      }
      break;
    }
    case 'audit':
    case 'policy':
    case 'inference': {
      if (options.jwks ?? env.BULWARK_JWKS_URL)
        args.push('--jwks', (options.jwks ?? env.BULWARK_JWKS_URL)!);
      if (service !== 'inference') break;
      const trust =
        options.trust ?? (env.BULWARK_MODEL_TRUST ? env.BULWARK_MODEL_TRUST.split(',') : undefined);
      const keys = new Set(trust?.map((f) => resolvePath(f.trim())).filter(Boolean));
      if (!trust) {
        const own = join(config.stateDir, 'demo-signer.pub');
        if (existsSync(own)) keys.add(own);
      }
      for (const model of config.models) {
        if (isBundle(model.bundleDir)) continue;
        // A folder of versions (<name>/<version>/, as the demo builder writes them): serve the newest.
        const versions = versionDirs(model.bundleDir);
        const newest = versions.at(-1);
        if (!newest) continue;
        const dir = join(model.bundleDir, newest);
        extra[envKey('models', model.name, 'bundle_dir')] = dir;
        notes.push(
          `models.${model.name}.bundleDir holds versions ${versions.join(', ')}: registering ${dir}`,
        );
        const pub = join(dirname(model.bundleDir), 'demo-signer.pub');
        if (!trust && existsSync(pub)) keys.add(pub);
      }
      for (const key of keys) notes.push(`trusting model signer key ${key}`);
      if (keys.size) args.push('--trust', [...keys].join(','));
      break;
    }
  }
  return { entry: ENTRY_POINTS[service], args, env: extra, caFile: ca, files, notes };
}

/**
 * Runs one service in this process (`bulwark serve`): writes the files the plan needs, trusts
 * the mesh CA for outgoing HTTPS, then loads the service's entry point with the planned
 * arguments. Resolves once the entry point has started (it keeps the process alive and
 * handles SIGTERM/SIGINT itself).
 */
export async function serve(
  options: ServeOptions,
  log: (line: string) => void = () => {},
): Promise<void> {
  const plan = planServe(options);
  for (const file of plan.files) {
    await mkdir(dirname(file.path), { recursive: true, mode: 0o700 });
    await writeFile(file.path, file.content, { mode: file.mode });
  }
  for (const note of plan.notes) log(note);
  Object.assign(process.env, plan.env);
  if (options.service !== 'demo-idp') {
    // The service loads bulwark.yaml itself; variables meant for the CLI would be refused.
    for (const name of Object.keys(process.env)) {
      if (name.startsWith('BULWARK_') && !isConfigVariable(name)) delete process.env[name];
    }
  }
  if (plan.caFile) {
    // The broker serves a mesh certificate: JWKS fetches must trust the mesh CA.
    setDefaultCACertificates([
      ...getCACertificates('default'),
      await readFile(plan.caFile, 'utf8'),
    ]);
  }
  if (options.exitWithParent) {
    const parent = process.ppid;
    const watch = setInterval(() => {
      // Orphans are re-parented (to init or a subreaper): the launcher is gone.
      if (process.ppid !== parent) {
        clearInterval(watch);
        log('the launcher is gone; stopping');
        process.kill(process.pid, 'SIGTERM');
      }
    }, 500);
    watch.unref();
  }
  process.argv = [process.execPath, plan.entry, ...plan.args];
  await import(pathToFileURL(plan.entry).href);
}
