/**
 * Registers the models named in `bulwark.yaml` (`models.<name>.bundleDir`). A `bundleDir` is
 * either one bundle (a folder holding `manifest.json`) or a folder of versions
 * (`<name>/<version>/`, as the demo builder and the launcher write them). Every signed version
 * found is verified and registered; for a model the registry did not know yet (no stored
 * versions, hence no routing state) the newest version becomes stable. A model with stored
 * routing keeps it: new versions are registered, not promoted (`bulwark model promote` does).
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { readBundleDir } from '../bundle/bundle-files.ts';
import type { ModelRegistry } from './model-registry.ts';

export interface ConfiguredModel {
  name: string;
  /** One bundle, or a folder of version folders. */
  bundleDir: string;
  /** When set, the signed manifest must declare this tier. */
  riskTier?: string | undefined;
}

const isBundle = (dir: string) => existsSync(path.join(dir, 'manifest.json'));

/**
 * The bundle folders a `bundleDir` stands for, oldest version first (numeric-aware order).
 *
 * @example
 * ```ts
 * bundleDirsOf('.bulwark/models/iris'); // ['.bulwark/models/iris/1', '.bulwark/models/iris/2']
 * ```
 */
export function bundleDirsOf(dir: string): string[] {
  if (isBundle(dir)) return [dir];
  let names: string[];
  try {
    names = readdirSync(dir, { withFileTypes: true })
      .filter((d) => d.isDirectory() && isBundle(path.join(dir, d.name)))
      .map((d) => d.name);
  } catch {
    return [];
  }
  return names
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
    .map((n) => path.join(dir, n));
}

/**
 * Verifies and registers every configured model version; refusals are logged with the reason
 * and skipped (the service still starts with the rest). Resolves with what was registered.
 *
 * @example
 * ```ts
 * await registerConfiguredModels(service.registry, config.models, logger);
 * ```
 */
export async function registerConfiguredModels(
  registry: ModelRegistry,
  models: readonly ConfiguredModel[],
  logger: Logger,
): Promise<Array<{ name: string; version: string }>> {
  const registered: Array<{ name: string; version: string }> = [];
  for (const m of models) {
    const dirs = bundleDirsOf(m.bundleDir);
    if (dirs.length === 0) {
      logger.error(
        { model: m.name, dir: m.bundleDir },
        'model bundle refused: bundleDir holds no bundle (manifest.json) and no version folders',
      );
      continue;
    }
    // Routing state exists once the registry knows the model: leave promotion to the admins.
    const promoteNewest = registry.get(m.name) === undefined;
    const prepared = [];
    for (const dir of dirs) {
      try {
        const bundle = registry.verify(await readBundleDir(dir));
        if (bundle.manifest.name !== m.name)
          throw new Error(`bundle declares model ${bundle.manifest.name}`);
        if (m.riskTier && bundle.manifest.riskTier !== m.riskTier) {
          throw new Error(
            `signed risk tier ${bundle.manifest.riskTier} differs from bulwark.yaml (${m.riskTier})`,
          );
        }
        prepared.push(await registry.load(bundle));
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'ERR_MODEL_ADMIN_CONFLICT') continue; // stored already
        logger.error(
          { model: m.name, dir, code, reason: (err as Error).message },
          'model bundle refused',
        );
      }
    }
    for (const [i, p] of prepared.entries()) {
      const newest = i === prepared.length - 1;
      await registry.commit(p, promoteNewest && newest);
      registered.push({ name: m.name, version: p.bundle.manifest.version });
      logger.info({ model: m.name, version: p.bundle.manifest.version }, 'model registered');
    }
  }
  return registered;
}
