import { parse as parseYaml } from 'yaml';
import { ConfigError } from './config-error.ts';
import { COMMAND_ENV } from './defaults.ts';

/** Prefix of every override variable. */
export const ENV_PREFIX = 'BULWARK_';

/**
 * Applies `BULWARK_*` variables to a parsed `bulwark.yaml` document (in place) and returns, for
 * each overridden key path (dotted), the variable that set it.
 *
 * Mapping: drop `BULWARK_`, split the rest on `__` (double underscore) into key segments; each
 * segment matches an existing key ignoring case, `_` and `-`, else becomes camelCase:
 *
 * | variable | key |
 * |---|---|
 * | `BULWARK_TRUST_DOMAIN=example.org` | `trustDomain` |
 * | `BULWARK_SERVICES__AUDIT__PORT=7443` | `services.audit.port` |
 * | `BULWARK_SERVICES__AUDIT__METRICS_PORT=0` | `services.audit.metricsPort` |
 * | `BULWARK_ORGANISATIONS__ACME__CLIENT_SECRET_FILE=/run/secrets/acme` | `organisations.acme.clientSecretFile` |
 * | `BULWARK_SERVICES__AUDIT__PEERS=[inference, policy]` | `services.audit.peers` (a list) |
 * | `BULWARK_ORGANISATIONS__ACME__EMAIL_DOMAINS__0=acme.test` | first list item |
 *
 * Values: an integer, decimal, `true`/`false` or a `[...]`/`{...}` YAML flow collection is
 * parsed as such, unless the key already holds a string in the file, in which case the value
 * stays a string; anything else is a string. `BULWARK_CONFIG` names the file, and the
 * commands' own variables ({@link COMMAND_ENV}: `BULWARK_TOKEN`, `BULWARK_CA_FILE`, ...) are
 * not overrides. Unknown keys are reported by validation, naming the variable.
 */
export function applyEnvOverrides(
  document: Record<string, unknown>,
  env: Record<string, string | undefined>,
): Map<string, string> {
  const origins = new Map<string, string>();
  const names = Object.keys(env)
    .filter((key) => key.startsWith(ENV_PREFIX) && !COMMAND_ENV.has(key))
    .sort();
  for (const variable of names) {
    const raw = env[variable];
    if (raw === undefined) continue;
    const segments = variable.slice(ENV_PREFIX.length).split('__');
    if (segments.some((segment) => segment === '' || segment.startsWith('_'))) {
      throw new ConfigError(
        'ERR_CONFIG_ENV',
        `${variable}: expected BULWARK_<KEY>[__<KEY>...], keys joined by a double underscore`,
      );
    }
    let node: Record<string, unknown> | unknown[] = document;
    const keys: string[] = [];
    for (let i = 0; i < segments.length; i += 1) {
      const key = keyFor(node, segments[i]!);
      keys.push(key);
      const last = i === segments.length - 1;
      if (last) {
        setChild(node, key, parseValue(raw, getChild(node, key)));
        break;
      }
      let next = getChild(node, key);
      if (next === undefined || next === null) {
        next = {};
        setChild(node, key, next);
      }
      if (typeof next !== 'object') {
        throw new ConfigError(
          'ERR_CONFIG_ENV',
          `${variable}: ${keys.join('.')} holds a single value, so it has no key "${segments[i + 1]}"`,
        );
      }
      node = next as Record<string, unknown> | unknown[];
    }
    origins.set(keys.join('.'), variable);
  }
  return origins;
}

const normalize = (key: string) => key.toLowerCase().replace(/[-_]/g, '');

function keyFor(node: Record<string, unknown> | unknown[], segment: string): string {
  if (Array.isArray(node) && /^\d+$/.test(segment)) return segment;
  if (!Array.isArray(node)) {
    const existing = Object.keys(node).find((key) => normalize(key) === normalize(segment));
    if (existing !== undefined) return existing;
  }
  return segment.toLowerCase().replace(/_([a-z0-9])/g, (_m, char: string) => char.toUpperCase());
}

function getChild(node: Record<string, unknown> | unknown[], key: string): unknown {
  return Array.isArray(node) ? node[Number(key)] : node[key];
}

function setChild(node: Record<string, unknown> | unknown[], key: string, value: unknown): void {
  if (Array.isArray(node)) node[Number(key)] = value;
  else node[key] = value;
}

function parseValue(raw: string, current: unknown): unknown {
  if (typeof current === 'string') return raw;
  const trimmed = raw.trim();
  if (/^-?\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed);
  if (trimmed === 'true' || trimmed === 'false') return trimmed === 'true';
  if (/^[[{]/.test(trimmed)) {
    try {
      return parseYaml(trimmed) as unknown;
    } catch {
      return raw;
    }
  }
  return raw;
}
