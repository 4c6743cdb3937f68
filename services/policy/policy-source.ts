import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { PolicyError } from './errors.ts';
import { compilePolicyYaml, type CompiledPolicy } from './policy-document.ts';

/** Model text and compiled policy, as read from a source. */
export interface LoadedPolicy {
  modelText: string;
  policy: CompiledPolicy;
}

/**
 * Where policy comes from: files (default) or PostgreSQL. `load` validates and throws
 * `ERR_POLICY_INVALID` / `ERR_POLICY_SOURCE_UNAVAILABLE`; `watch` calls back on change.
 */
export interface PolicySource {
  /** For log lines, e.g. the policy file path. */
  readonly name: string;
  load(): Promise<LoadedPolicy>;
  /** Starts watching; returns a function that stops. */
  watch(onChange: () => void): () => void;
  /** Releases connections (database sources). */
  close?(): Promise<void>;
}

/** Options of {@link createFileSource}. */
export interface FileSourceOptions {
  /** Path of model.conf. */
  modelPath: string;
  /** Path of the YAML policy. */
  policyPath: string;
  /** Quiet period before a change is reported, so half-written files are not read. Default 100 ms. */
  debounceMs?: number;
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new PolicyError('ERR_POLICY_SOURCE_UNAVAILABLE', `cannot read ${basename(path)}`, {
      cause: err,
    });
  }
}

/**
 * Policy from `model.conf` and a YAML policy file. Watches the directories (editors replace files
 * rather than write them in place) and reports changes after a short quiet period.
 *
 * @example
 * ```ts
 * const source = createFileSource({ modelPath: 'policy/model.conf', policyPath: 'policy/policy.yaml' });
 * ```
 */
export function createFileSource(options: FileSourceOptions): PolicySource {
  const { modelPath, policyPath, debounceMs = 100 } = options;
  return {
    name: policyPath,
    async load() {
      const [modelText, policyText] = await Promise.all([
        readText(modelPath),
        readText(policyPath),
      ]);
      return { modelText, policy: compilePolicyYaml(policyText, basename(policyPath)) };
    },
    watch(onChange) {
      let timer: NodeJS.Timeout | undefined;
      const files = new Set([basename(modelPath), basename(policyPath)]);
      const fire = (_event: string, file: string | Buffer | null) => {
        if (file !== null && !files.has(String(file))) return;
        clearTimeout(timer);
        timer = setTimeout(onChange, debounceMs);
      };
      const watchers: FSWatcher[] = [...new Set([dirname(modelPath), dirname(policyPath)])].map(
        (dir) => watch(dir, { persistent: false }, fire),
      );
      return () => {
        clearTimeout(timer);
        for (const w of watchers) w.close();
      };
    },
  };
}
