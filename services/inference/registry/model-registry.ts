/**
 * The models a service instance serves: verified bundles loaded into onnxruntime, and per model
 * the traffic split (stable version, optional canary with a weight, previous stable for
 * rollback). Canary assignment is sticky per subject: a subject's bucket (a hash of subject and
 * model) decides, so it keeps hitting the same version while the weight is unchanged.
 *
 * With a `modelDir`, registered bundles are stored as `<modelDir>/<name>/<version>/` and the
 * routing in `<modelDir>/_routing.json` (a name no model can take), and both are loaded again on
 * start; every stored bundle is verified again before it is loaded.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readBundleDir, writeBundleDir } from '../bundle/bundle-files.ts';
import { SAFE_SEGMENT } from '../bundle/manifest.ts';
import { verifyBundleFiles, type VerifiedBundle } from '../bundle/verify.ts';
import { InferenceError, invalidInput } from '../errors.ts';
import {
  createModelRunner,
  type ModelRunner,
  type RunnerOptions,
} from '../runtime/model-runner.ts';

export interface ModelVersionInfo {
  version: string;
  bundleSha256: string;
  riskTier: VerifiedBundle['manifest']['riskTier'];
  signerKeyId: string;
  registeredAt: Date;
}

export interface ModelRouting {
  stable: string;
  canary: string;
  canaryPercent: number;
  previousStable: string;
}

export interface ModelInfo extends ModelRouting {
  name: string;
  versions: ModelVersionInfo[];
}

export interface ModelRegistryOptions {
  /** Ed25519 public keys whose bundle signatures are accepted. */
  trustedKeys: readonly KeyObject[];
  /** Where registered bundles and routing are kept; omit for memory only. */
  modelDir?: string;
  allowedOperatorDomains?: readonly string[];
  runner?: RunnerOptions;
  now?: () => Date;
}

export interface PreparedVersion {
  bundle: VerifiedBundle;
  runner: ModelRunner;
}

export interface ModelRegistry {
  /** Verifies a bundle (signature, digests, layout, operators) and that its version is new. */
  verify(files: ReadonlyMap<string, Uint8Array>): VerifiedBundle;
  /** Loads a verified bundle into onnxruntime without making it visible yet. */
  load(bundle: VerifiedBundle): Promise<PreparedVersion>;
  /** `verify` then `load`. */
  prepare(files: ReadonlyMap<string, Uint8Array>): Promise<PreparedVersion>;
  /** Makes a prepared version visible (stores it when a model directory is configured). */
  commit(prepared: PreparedVersion, makeStable: boolean): Promise<ModelInfo>;
  /** Drops a prepared version that will not be committed. */
  discard(prepared: PreparedVersion): Promise<void>;
  list(): ModelInfo[];
  get(name: string): ModelInfo | undefined;
  /** Picks the runner for a call: an explicit version, else canary or stable for this subject. */
  resolve(name: string, version: string, subject: string): ModelRunner;
  /** Computes the routing a change would produce, without applying it (to audit first). */
  plan(name: string, change: RoutingChange): ModelRouting;
  apply(name: string, routing: ModelRouting): Promise<ModelInfo>;
  /** Loads every bundle stored in the model directory. */
  loadStored(onError?: (dir: string, err: unknown) => void): Promise<void>;
  close(): Promise<void>;
}

export type RoutingChange =
  | { kind: 'canary'; version: string; percent: number }
  | { kind: 'promote'; version: string }
  | { kind: 'rollback' };

interface Entry {
  versions: Map<string, { runner: ModelRunner; info: ModelVersionInfo }>;
  routing: ModelRouting;
}

const ROUTING_FILE = '_routing.json';

function checkName(what: string, value: string): void {
  if (!SAFE_SEGMENT.test(value) || value.includes('..')) {
    throw invalidInput(`${what} ${JSON.stringify(value.slice(0, 64))} is not a valid name`);
  }
}

/** Sticky bucket 0..99 of a subject for a model. */
export function canaryBucket(subject: string, model: string): number {
  return createHash('sha256').update(`${model}\u0000${subject}`).digest().readUInt32BE(0) % 100;
}

/**
 * @example
 * ```ts
 * const registry = createModelRegistry({ trustedKeys: [loadTrustedKey(pem)], modelDir: '/var/lib/bulwark/models' });
 * await registry.loadStored();
 * const runner = registry.resolve('iris', '', 'acme/alice');
 * ```
 */
export function createModelRegistry(options: ModelRegistryOptions): ModelRegistry {
  const now = options.now ?? (() => new Date());
  const models = new Map<string, Entry>();

  const info = (name: string, e: Entry): ModelInfo => ({
    name,
    versions: [...e.versions.values()].map((v) => v.info),
    ...e.routing,
  });
  const mustGet = (name: string): Entry => {
    checkName('model name', name);
    const e = models.get(name);
    if (!e)
      throw new InferenceError('ERR_INFERENCE_MODEL_NOT_FOUND', `model ${name} is not registered`);
    return e;
  };
  const saveRouting = async () => {
    if (!options.modelDir) return;
    const data = Object.fromEntries([...models].map(([n, e]) => [n, e.routing]));
    const file = path.join(options.modelDir, ROUTING_FILE);
    await writeFile(`${file}.tmp`, JSON.stringify(data, null, 2));
    await rename(`${file}.tmp`, file);
  };
  const add = (prepared: PreparedVersion, registeredAt: Date): Entry => {
    const { manifest } = prepared.bundle;
    let e = models.get(manifest.name);
    if (!e) {
      e = {
        versions: new Map(),
        routing: { stable: '', canary: '', canaryPercent: 0, previousStable: '' },
      };
      models.set(manifest.name, e);
    }
    e.versions.set(manifest.version, {
      runner: prepared.runner,
      info: {
        version: manifest.version,
        bundleSha256: prepared.bundle.bundleSha256,
        riskTier: manifest.riskTier,
        signerKeyId: prepared.bundle.signerKeyId,
        registeredAt,
      },
    });
    return e;
  };

  const registry: ModelRegistry = {
    verify(files) {
      const bundle = verifyBundleFiles(files, {
        trustedKeys: options.trustedKeys,
        ...(options.allowedOperatorDomains
          ? { allowedOperatorDomains: options.allowedOperatorDomains }
          : {}),
      });
      if (models.get(bundle.manifest.name)?.versions.has(bundle.manifest.version)) {
        throw new InferenceError(
          'ERR_MODEL_ADMIN_CONFLICT',
          `model ${bundle.manifest.name} version ${bundle.manifest.version} is already registered`,
        );
      }
      return bundle;
    },
    async load(bundle) {
      return { bundle, runner: await createModelRunner(bundle, options.runner) };
    },
    prepare(files) {
      return Promise.resolve().then(() => registry.load(registry.verify(files)));
    },
    async commit(prepared, makeStable) {
      const { name, version } = prepared.bundle.manifest;
      if (options.modelDir) {
        await writeBundleDir(path.join(options.modelDir, name, version), prepared.bundle.files);
      }
      const e = add(prepared, now());
      if (makeStable || !e.routing.stable) {
        e.routing = { ...e.routing, previousStable: e.routing.stable, stable: version };
      }
      await saveRouting();
      return info(name, e);
    },
    discard: (prepared) => prepared.runner.release(),
    list: () => [...models.keys()].sort().map((n) => info(n, models.get(n)!)),
    get(name) {
      const e = models.get(name);
      return e ? info(name, e) : undefined;
    },
    resolve(name, version, subject) {
      const e = mustGet(name);
      if (version) {
        checkName('model version', version);
        const v = e.versions.get(version);
        if (!v)
          throw new InferenceError(
            'ERR_INFERENCE_MODEL_NOT_FOUND',
            `model ${name} has no version ${version}`,
          );
        return v.runner;
      }
      const { stable, canary, canaryPercent } = e.routing;
      const chosen = canary && canaryBucket(subject, name) < canaryPercent ? canary : stable;
      const v = e.versions.get(chosen);
      if (!v)
        throw new InferenceError(
          'ERR_INFERENCE_MODEL_NOT_FOUND',
          `model ${name} has no servable version`,
        );
      return v.runner;
    },
    plan(name, change) {
      const e = mustGet(name);
      const r = e.routing;
      const known = (v: string) => {
        checkName('model version', v);
        if (!e.versions.has(v))
          throw new InferenceError(
            'ERR_INFERENCE_MODEL_NOT_FOUND',
            `model ${name} has no version ${v}`,
          );
      };
      switch (change.kind) {
        case 'canary':
          if (!change.version) return { ...r, canary: '', canaryPercent: 0 };
          known(change.version);
          if (!Number.isInteger(change.percent) || change.percent < 0 || change.percent > 100) {
            throw invalidInput('canary percent must be an integer from 0 to 100');
          }
          if (change.version === r.stable)
            throw invalidInput(`version ${change.version} is already the stable version`);
          return { ...r, canary: change.version, canaryPercent: change.percent };
        case 'promote': {
          const target = change.version || r.canary;
          if (!target)
            throw new InferenceError(
              'ERR_MODEL_ADMIN_CONFLICT',
              `model ${name} has no canary to promote`,
            );
          known(target);
          return {
            stable: target,
            canary: '',
            canaryPercent: 0,
            previousStable: r.stable === target ? r.previousStable : r.stable,
          };
        }
        case 'rollback':
          if (!r.previousStable) {
            throw new InferenceError(
              'ERR_MODEL_ADMIN_CONFLICT',
              `model ${name} has no previous version to roll back to`,
            );
          }
          return { stable: r.previousStable, canary: '', canaryPercent: 0, previousStable: '' };
      }
    },
    async apply(name, routing) {
      const e = mustGet(name);
      e.routing = routing;
      await saveRouting();
      return info(name, e);
    },
    async loadStored(onError) {
      if (!options.modelDir) return;
      const dir = options.modelDir;
      let routing: Record<string, ModelRouting> = {};
      try {
        routing = JSON.parse(await readFile(path.join(dir, ROUTING_FILE), 'utf8')) as Record<
          string,
          ModelRouting
        >;
      } catch {
        // No routing yet: the first version of each model becomes stable below.
      }
      for (const name of (await readdir(dir, { withFileTypes: true }))
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
        .sort()) {
        if (!SAFE_SEGMENT.test(name)) continue;
        for (const version of (await readdir(path.join(dir, name))).sort()) {
          const bundleDir = path.join(dir, name, version);
          try {
            const files = await readBundleDir(bundleDir);
            const bundle = verifyBundleFiles(files, {
              trustedKeys: options.trustedKeys,
              expect: { name, version },
              ...(options.allowedOperatorDomains
                ? { allowedOperatorDomains: options.allowedOperatorDomains }
                : {}),
            });
            const runner = await createModelRunner(bundle, options.runner);
            const e = add({ bundle, runner }, now());
            if (!e.routing.stable) e.routing.stable = version;
          } catch (err) {
            onError?.(bundleDir, err);
          }
        }
        const e = models.get(name);
        const saved = routing[name];
        if (e && saved && e.versions.has(saved.stable)) {
          const ok = (v: string) => (v && e.versions.has(v) ? v : '');
          e.routing = {
            stable: saved.stable,
            canary: ok(saved.canary),
            canaryPercent: ok(saved.canary) ? saved.canaryPercent : 0,
            previousStable: ok(saved.previousStable),
          };
        }
      }
    },
    async close() {
      for (const e of models.values())
        for (const v of e.versions.values()) await v.runner.release();
      models.clear();
    },
  };
  return registry;
}
