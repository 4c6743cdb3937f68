/**
 * Step 4: quotas per subject and model: a token bucket (sustained rate + burst) and a daily
 * budget that resets at 00:00 UTC, both configured per risk tier. State is in memory per
 * replica; with several replicas each enforces its share (configure rates accordingly).
 */
import { DEFAULTS } from '../../../mesh/config/defaults.ts';
import { InferenceError } from '../errors.ts';
import type { RiskTier } from '../bundle/manifest.ts';

export interface TierQuota {
  /** Sustained requests per second. */
  ratePerSec: number;
  /** Bucket size: requests allowed in a burst. */
  burst: number;
  /** Requests per UTC day. */
  dailyBudget: number;
}

/** The defaults `bulwark.yaml`'s `inference.quotas` starts from (`mesh/config/defaults.ts`). */
export const DEFAULT_TIER_QUOTAS: Record<RiskTier, TierQuota> = DEFAULTS.quotas;

export interface QuotaGuardOptions {
  tiers?: Partial<Record<RiskTier, TierQuota>>;
  now?: () => number;
  /** Most tracked (subject, model) pairs before idle ones are dropped. Default 100000. */
  maxEntries?: number;
}

export interface QuotaState {
  tokens: number;
  dailyUsed: number;
  dailyRemaining: number;
}

export interface QuotaGuard {
  /** Takes `cost` requests from the bucket and budget, or throws RESOURCE_EXHAUSTED. */
  take(subject: string, model: string, tier: RiskTier, cost?: number): QuotaState;
}

interface Entry {
  tokens: number;
  at: number;
  day: number;
  used: number;
}

const DAY_MS = 86_400_000;

/**
 * @example
 * ```ts
 * const quota = createQuotaGuard({ tiers: { high: { ratePerSec: 1, burst: 2, dailyBudget: 100 } } });
 * quota.take('acme/alice', 'credit', 'high');
 * ```
 */
export function createQuotaGuard(options: QuotaGuardOptions = {}): QuotaGuard {
  const tiers = { ...DEFAULT_TIER_QUOTAS, ...options.tiers };
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 100_000;
  const entries = new Map<string, Entry>();

  return {
    take(subject, model, tier, cost = 1) {
      const q = tiers[tier];
      const t = now();
      const day = Math.floor(t / DAY_MS);
      const key = `${subject}\u0000${model}`;
      let e = entries.get(key);
      if (!e) {
        if (entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
        e = { tokens: q.burst, at: t, day, used: 0 };
        entries.set(key, e);
      }
      e.tokens = Math.min(q.burst, e.tokens + ((t - e.at) / 1000) * q.ratePerSec);
      e.at = t;
      if (e.day !== day) {
        e.day = day;
        e.used = 0;
      }
      if (e.used + cost > q.dailyBudget) {
        throw new InferenceError(
          'ERR_INFERENCE_QUOTA_EXCEEDED',
          `daily budget of ${q.dailyBudget} requests for model ${model} is used up; it resets at 00:00 UTC`,
        );
      }
      if (e.tokens < cost) {
        const waitMs = Math.ceil(((cost - e.tokens) / q.ratePerSec) * 1000);
        throw new InferenceError(
          'ERR_INFERENCE_QUOTA_EXCEEDED',
          `rate limit of ${q.ratePerSec}/s (burst ${q.burst}) for model ${model} exceeded; retry in ${waitMs} ms`,
        );
      }
      e.tokens -= cost;
      e.used += cost;
      return { tokens: e.tokens, dailyUsed: e.used, dailyRemaining: q.dailyBudget - e.used };
    },
  };
}
