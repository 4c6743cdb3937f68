import type { Logger } from 'pino';
import { DecisionCache } from './decision-cache.ts';
import {
  createPolicyEngine,
  type Decision,
  type DecisionRequest,
  type Explanation,
  type PolicyEngine,
} from './engine.ts';
import { errorCode } from '../../mesh/errors.ts';
import type { PolicySource } from './policy-source.ts';

/** Options of {@link createPolicyStore}. */
export interface PolicyStoreOptions {
  source: PolicySource;
  logger: Logger;
  /** Clock for requests without a time and for `loadedAt`. */
  now?: () => Date;
  /** Decision cache entries; 0 disables the cache. Default 100,000. */
  cacheSize?: number;
  /** Reload when the source reports a change. Default true. */
  watch?: boolean;
  /** Called after every reload attempt that changed or was refused (for the audit trail). */
  onReload?: (event: ReloadEvent) => void;
}

/** A reload that changed the serving revision, or was refused. */
export interface ReloadEvent {
  source: string;
  /** Serving revision after the attempt. */
  revision: string;
  previous: string;
  changed: boolean;
  /** Why a refused reload was refused. */
  error?: string;
}

/** Outcome of a reload. */
export interface ReloadResult {
  revision: string;
  changed: boolean;
}

/**
 * The serving policy: the current engine, the decision cache and hot reload. A reload validates
 * the new policy completely before it replaces the old one; a broken source is refused with a
 * log line and the old revision keeps serving.
 */
export class PolicyStore {
  private current: PolicyEngine;
  private loaded: Date;
  private readonly cache: DecisionCache;
  private readonly options: Required<Omit<PolicyStoreOptions, 'watch' | 'onReload'>> &
    Pick<PolicyStoreOptions, 'onReload'>;
  private reloading: Promise<ReloadResult> | undefined;
  private again = false;
  private unwatch: (() => void) | undefined;

  constructor(
    engine: PolicyEngine,
    options: Required<Omit<PolicyStoreOptions, 'watch' | 'onReload'>> &
      Pick<PolicyStoreOptions, 'onReload'>,
  ) {
    this.current = engine;
    this.options = options;
    this.loaded = options.now();
    this.cache = new DecisionCache(options.cacheSize);
  }

  get engine(): PolicyEngine {
    return this.current;
  }

  get revision(): string {
    return this.current.revision;
  }

  get loadedAt(): Date {
    return this.loaded;
  }

  /** Decides through the cache (with `engine`, against that pinned revision). */
  decide(request: DecisionRequest, engine: PolicyEngine = this.current): Decision {
    const normalized = engine.normalize(request);
    const key = DecisionCache.key(engine.revision, normalized);
    const hit = this.cache.get(key);
    if (hit) return hit;
    const decision = engine.decideNormalized(normalized);
    this.cache.set(key, decision);
    return decision;
  }

  explain(request: DecisionRequest): Explanation {
    return this.current.explain(request);
  }

  /** Cache hit and miss counts, for metrics. */
  cacheStats(): { hits: number; misses: number; size: number } {
    return { hits: this.cache.hits, misses: this.cache.misses, size: this.cache.size };
  }

  /** Re-reads the source; concurrent calls share one reload (and one more if asked meanwhile). */
  reload(): Promise<ReloadResult> {
    if (this.reloading) {
      this.again = true;
      return this.reloading;
    }
    this.reloading = this.reloadOnce().finally(() => {
      this.reloading = undefined;
      if (this.again) {
        this.again = false;
        void this.reload().catch(() => undefined);
      }
    });
    return this.reloading;
  }

  private async reloadOnce(): Promise<ReloadResult> {
    const { source, logger, now } = this.options;
    const old = this.current.revision;
    try {
      const { modelText, policy } = await source.load();
      const engine = createPolicyEngine({ modelText, policy, now });
      if (engine.revision === old) return { revision: old, changed: false };
      this.current = engine;
      this.loaded = now();
      this.cache.clear();
      logger.info(
        {
          event: 'policy.reloaded',
          source: source.name,
          revision: engine.revision,
          previous: old,
          rules: engine.ruleCount,
        },
        'policy reloaded',
      );
      this.options.onReload?.({
        source: source.name,
        revision: engine.revision,
        previous: old,
        changed: true,
      });
      return { revision: engine.revision, changed: true };
    } catch (err) {
      this.options.onReload?.({
        source: source.name,
        revision: old,
        previous: old,
        changed: false,
        error: err instanceof Error ? err.message : String(err),
      });
      logger.error(
        {
          event: 'policy.reload_refused',
          source: source.name,
          code: errorCode(err),
          revision: old,
        },
        `policy reload refused: ${err instanceof Error ? err.message : String(err)}; still serving revision ${old}`,
      );
      throw err;
    }
  }

  /** Starts reloading on source changes. */
  startWatching(): void {
    this.unwatch ??= this.options.source.watch(() => {
      void this.reload().catch(() => undefined);
    });
  }

  close(): void {
    this.unwatch?.();
    this.unwatch = undefined;
  }
}

/**
 * Loads the policy (refusing to start on a broken one) and returns the store.
 *
 * @example
 * ```ts
 * const store = await createPolicyStore({ source: createFileSource({ modelPath, policyPath }), logger });
 * store.decide({ subject: 'acme/bob', org: 'acme', object: 'model:iris', action: 'infer' });
 * ```
 */
export async function createPolicyStore(options: PolicyStoreOptions): Promise<PolicyStore> {
  const resolved = { now: () => new Date(), cacheSize: 100_000, ...options };
  if (!Number.isInteger(resolved.cacheSize) || resolved.cacheSize < 0) {
    throw new TypeError('cacheSize must be a non-negative integer');
  }
  const { modelText, policy } = await resolved.source.load();
  const engine = createPolicyEngine({ modelText, policy, now: resolved.now });
  const store = new PolicyStore(engine, resolved);
  resolved.logger.info(
    {
      event: 'policy.loaded',
      source: resolved.source.name,
      revision: engine.revision,
      rules: engine.ruleCount,
    },
    'policy loaded',
  );
  if (resolved.watch !== false) store.startWatching();
  return store;
}
