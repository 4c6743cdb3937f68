import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { ConfigError } from './config-error.ts';
import { CONFIG_FILE_ENV, SERVICE_NAMES } from './defaults.ts';
import { applyEnvOverrides } from './env-overrides.ts';
import { formatIssues } from './format-issues.ts';
import { resolveConfig, type BulwarkConfig } from './resolve.ts';
import { configFileSchema, type ConfigFile } from './schema.ts';

/** The `bulwark.yaml` shipped at the package root: the demo mesh, used when no file is found. */
export const EMBEDDED_CONFIG_PATH = fileURLToPath(new URL('../../bulwark.yaml', import.meta.url));

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** The file to read. Default: `$BULWARK_CONFIG`, else `./bulwark.yaml`, else the embedded one. */
  file?: string;
  /** Variables for `BULWARK_*` overrides. Default: `process.env`. */
  env?: Record<string, string | undefined>;
  /** Base of relative paths given by variables, and where `./bulwark.yaml` is looked for. */
  cwd?: string;
}

/**
 * Reads `bulwark.yaml`, applies `BULWARK_*` overrides (see {@link applyEnvOverrides}),
 * validates everything and fills the defaults. Relative paths in the file are relative to the
 * file's directory; relative paths from variables are relative to `cwd`.
 *
 * Throws {@link ConfigError} listing every problem, e.g.
 * `services.audit.port: expected an integer 0-65535, got "abc"`.
 *
 * @example
 * ```ts
 * const config = loadConfig({ file: 'bulwark.yaml' });
 * config.services.audit.address; // '127.0.0.1:7442'
 * ```
 */
export function loadConfig(options: LoadConfigOptions = {}): BulwarkConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const named = options.file ?? env[CONFIG_FILE_ENV];
  let file: string;
  if (named) {
    file = resolvePath(cwd, named);
    if (!existsSync(file) || !statSync(file).isFile()) {
      throw new ConfigError(
        'ERR_CONFIG_NOT_FOUND',
        `configuration file ${file} does not exist; pass an existing file${options.file ? '' : ` or unset ${CONFIG_FILE_ENV}`}`,
      );
    }
  } else {
    const local = resolvePath(cwd, 'bulwark.yaml');
    file = existsSync(local) ? local : EMBEDDED_CONFIG_PATH;
  }
  return parseConfig(readFileSync(file, 'utf8'), { source: file, env, cwd });
}

/** Options of {@link parseConfig}. */
export interface ParseConfigOptions {
  /** Shown in messages and kept as `config.source`; its directory is the base of relative paths. */
  source?: string;
  env?: Record<string, string | undefined>;
  cwd?: string;
}

/** Like {@link loadConfig}, on YAML text already read. */
export function parseConfig(text: string, options: ParseConfigOptions = {}): BulwarkConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const label = options.source ?? 'bulwark.yaml';
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length) {
    throw new ConfigError(
      'ERR_CONFIG_SYNTAX',
      `${label} is not valid YAML`,
      document.errors.map((err) => {
        const at = err.linePos?.[0];
        // Only the first line: the rest quotes the source, which is not repeated in errors.
        const message = (err.message.split('\n')[0] ?? '').replace(
          / at line \d+, column \d+:?$/,
          '',
        );
        return `${at ? `line ${at.line}, column ${at.col}` : 'somewhere'}: ${message}`;
      }),
    );
  }
  const raw: unknown = document.toJS() ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw) || raw === null) {
    throw new ConfigError('ERR_CONFIG_INVALID', `${label} is not valid`, [
      '(top level): expected a mapping of settings',
    ]);
  }
  const origins = applyEnvOverrides(raw as Record<string, unknown>, env);
  const parsed = configFileSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      `${label} is not valid`,
      formatIssues(parsed.error.issues, origins),
    );
  }
  const problems = crossCheck(parsed.data);
  if (problems.length)
    throw new ConfigError('ERR_CONFIG_INVALID', `${label} is not valid`, problems);
  const fileDir = options.source ? dirname(resolvePath(cwd, options.source)) : cwd;
  return resolveConfig(parsed.data, { fileDir, cwd, origins }, options.source);
}

/** Rules that span several keys. */
function crossCheck(file: ConfigFile): string[] {
  const problems: string[] = [];
  const domainOwner = new Map<string, string>();
  for (const [id, org] of Object.entries(file.organisations ?? {})) {
    org.emailDomains.forEach((domain, i) => {
      const owner = domainOwner.get(domain);
      if (owner) {
        problems.push(
          `organisations.${id}.emailDomains.${i}: expected a domain no other organisation claims, got "${domain}" (already in ${owner})`,
        );
      }
      domainOwner.set(domain, id);
    });
  }
  const portOwner = new Map<number, string>();
  for (const name of SERVICE_NAMES) {
    const service = file.services?.[name];
    for (const key of ['port', 'metricsPort'] as const) {
      const port = service?.[key];
      if (port === undefined || port === 0) continue;
      const owner = portOwner.get(port);
      if (owner) {
        problems.push(
          `services.${name}.${key}: expected a port no other listener uses, got ${port} (also ${owner})`,
        );
      }
      portOwner.set(port, `services.${name}.${key}`);
    }
  }
  return problems;
}

/**
 * Reads a secret from a file named in the configuration (trailing newline removed). Refuses a
 * file that other users may read (mode & 0o077) so that secrets stay private; the message names
 * the file, never its content.
 */
export function readSecretFile(path: string): string {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch {
    throw new ConfigError(
      'ERR_CONFIG_SECRET_FILE',
      `secret file ${path} cannot be read; create it with mode 0600`,
    );
  }
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new ConfigError(
      'ERR_CONFIG_SECRET_FILE',
      `secret file ${path} is readable by other users (mode ${(mode & 0o777).toString(8)}); run chmod 600 ${path}`,
    );
  }
  const value = readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  if (!value) {
    throw new ConfigError('ERR_CONFIG_SECRET_FILE', `secret file ${path} is empty`);
  }
  return value;
}
