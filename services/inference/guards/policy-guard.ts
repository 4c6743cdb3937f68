/**
 * Step 3: the policy decision. Asks `bulwark.policy.v1.PolicyService/Decide` (through an
 * injected {@link PolicyClient}) whether the caller may act on `model:<name>@<version>`, with
 * the ABAC attributes the policy reads. Decisions are cached briefly; every cached entry
 * carries the revision it was made under and the whole cache is dropped the moment any answer
 * shows a new revision, so a policy change takes effect at once. When the client can ask for
 * the serving revision, the guard also polls it (every `revisionPollMs`), so a reload is seen
 * within that interval even while every decision comes from the cache; a failed poll drops
 * the cache, so an unreachable policy service stops cached allows within that interval too.
 * Fails closed: an unreachable
 * policy service is UNAVAILABLE, an unspecified effect is a deny.
 */
import {
  Effect,
  RiskTier,
  type DecideRequest,
  type DecideResponse,
} from '../../../gen/bulwark/policy/v1/policy.ts';
import { InferenceError } from '../errors.ts';
import type { RiskTier as ManifestRiskTier } from '../bundle/manifest.ts';
import type { Caller } from './token-guard.ts';

/** The part of the generated `PolicyServiceClient` the guard needs (promisified). */
export interface PolicyClient {
  decide(request: DecideRequest): Promise<DecideResponse>;
  /** `GetRevision`: the revision serving now. Optional; enables the revision poll. */
  getRevision?(): Promise<string>;
}

export interface PolicyGuardOptions {
  client: PolicyClient;
  /**
   * How long an allow/deny may be reused under the same revision. It also bounds how late a
   * time-window condition can take effect. Default 5000 ms.
   */
  cacheTtlMs?: number;
  /** How often the serving revision is asked for (when the client can). Default 500 ms; 0 off. */
  revisionPollMs?: number;
  /** Most cached decisions. Default 10000. */
  maxEntries?: number;
  now?: () => number;
}

export interface PolicyQuestion {
  caller: Caller;
  object: string;
  action: string;
  riskTier: ManifestRiskTier;
  batchSize?: number;
  peerSpiffeId?: string;
  sourceAddress?: string;
}

export interface PolicyVerdict {
  revision: string;
  matchedRule: string;
  reason: string;
}

export interface PolicyGuard {
  /** Resolves with the allow verdict or throws PERMISSION_DENIED / UNAVAILABLE. */
  check(question: PolicyQuestion): Promise<PolicyVerdict>;
  /** Asks the policy service for its revision now; drops the cache if it changed. */
  refreshRevision(): Promise<void>;
  /** Stops the revision poll. */
  stop(): void;
}

const TIERS: Record<ManifestRiskTier, RiskTier> = {
  low: RiskTier.RISK_TIER_LOW,
  medium: RiskTier.RISK_TIER_MEDIUM,
  high: RiskTier.RISK_TIER_HIGH,
};

/**
 * @example
 * ```ts
 * const policy = createPolicyGuard({ client: promisifiedPolicyClient });
 * const { revision } = await policy.check({ caller, object: 'model:iris@1', action: 'infer', riskTier: 'low' });
 * ```
 */
export function createPolicyGuard(options: PolicyGuardOptions): PolicyGuard {
  const { client, cacheTtlMs = 5000, maxEntries = 10_000, now = Date.now } = options;
  const cache = new Map<string, { at: number; response: DecideResponse }>();
  let revision = '';

  const observe = (response: { revision: string }) => {
    if (response.revision !== revision) {
      cache.clear();
      revision = response.revision;
    }
  };
  const refreshRevision = async () => {
    if (!client.getRevision) return;
    let current: string;
    try {
      current = await client.getRevision();
    } catch (err) {
      // Fail closed: while the policy service cannot be reached, no cached decision is used.
      cache.clear();
      throw err;
    }
    if (current) observe({ revision: current });
  };
  const pollMs = options.revisionPollMs ?? 500;
  const poll =
    client.getRevision && pollMs > 0
      ? setInterval(() => {
          refreshRevision().catch(() => {});
        }, pollMs)
      : undefined;
  poll?.unref();

  return {
    refreshRevision,
    stop: () => clearInterval(poll),
    async check(q) {
      const request: DecideRequest = {
        subject: q.caller.subject,
        org: q.caller.org,
        object: q.object,
        action: q.action,
        roles: q.caller.roles,
        attributes: {
          riskTier: TIERS[q.riskTier],
          certificateBound: q.caller.certificateBound,
          time: undefined,
          scopes: q.caller.scopes,
          clientId: q.caller.clientId,
          ...(q.caller.acr !== undefined ? { acr: q.caller.acr } : {}),
          ...(q.batchSize !== undefined ? { batchSize: q.batchSize } : {}),
          ...(q.peerSpiffeId !== undefined ? { peerSpiffeId: q.peerSpiffeId } : {}),
          ...(q.sourceAddress ? { sourceAddress: q.sourceAddress } : {}),
        },
      };
      // The time attribute stays with the policy service's clock, so it is not in the key.
      const key = JSON.stringify(request);
      const hit = cache.get(key);
      let response: DecideResponse;
      if (hit && now() - hit.at < cacheTtlMs && hit.response.revision === revision) {
        response = hit.response;
      } else {
        try {
          response = await client.decide(request);
        } catch (err) {
          throw new InferenceError(
            'ERR_INFERENCE_POLICY_UNAVAILABLE',
            'policy service unavailable',
            {
              cause: err,
            },
          );
        }
        observe(response);
        if (cache.size >= maxEntries) cache.clear();
        cache.set(key, { at: now(), response });
      }
      if (response.effect !== Effect.EFFECT_ALLOW) {
        throw new InferenceError(
          'ERR_INFERENCE_PERMISSION_DENIED',
          `policy denies ${q.action} on ${q.object}${response.reason ? `: ${response.reason}` : ''}`,
        );
      }
      return {
        revision: response.revision,
        matchedRule: response.matchedRule,
        reason: response.reason,
      };
    },
  };
}
