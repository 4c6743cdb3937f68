import { CONFIG_FILE_ENV, configFileSchema, ENV_PREFIX } from '../config/index.ts';

const normalise = (s: string) => s.replace(/[_-]/g, '').toLowerCase();
const TOP_LEVEL = new Set(Object.keys(configFileSchema.shape).map(normalise));

/** True for a `BULWARK_*` variable that overrides a `bulwark.yaml` key (or names the file). */
export function isConfigVariable(name: string): boolean {
  if (!name.startsWith(ENV_PREFIX)) return false;
  if (name === CONFIG_FILE_ENV) return true;
  const first = name.slice(ENV_PREFIX.length).split('__')[0] ?? '';
  return TOP_LEVEL.has(normalise(first));
}

/**
 * The environment without the `BULWARK_*` variables that are not configuration overrides
 * (`BULWARK_CA_FILE`, `BULWARK_TOKEN`, `BULWARK_CERTS_DIR`, ... of the CLI and launcher):
 * `loadConfig` treats every `BULWARK_*` variable as a key and would refuse them as unknown.
 */
export function configEnv(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  return Object.fromEntries(
    Object.entries(env).filter(([k]) => !k.startsWith(ENV_PREFIX) || isConfigVariable(k)),
  );
}
