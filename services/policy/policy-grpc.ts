import { peerIdentity, unaryHandler } from '../../mesh/kit/index.ts';
import type { Logger } from 'pino';
import {
  Effect,
  RiskTier,
  type Attributes,
  type DecideRequest,
  type DecideResponse,
  type PolicyServiceServer,
} from '../../gen/bulwark/policy/v1/policy.ts';
import type { RequestAttributes, RiskTierName } from './attributes.ts';
import { decideAndRecord, type DecisionAuditor } from './decision-record.ts';
import type { Decision, DecisionRequest } from './engine.ts';
import { PolicyError } from './errors.ts';
import type { PolicyStore } from './policy-store.ts';

const MAX_BATCH = 1000;

const TIER_NAMES: Record<number, RiskTierName> = {
  [RiskTier.RISK_TIER_LOW]: 'low',
  [RiskTier.RISK_TIER_MEDIUM]: 'medium',
  [RiskTier.RISK_TIER_HIGH]: 'high',
};

function attributesOf(a: Attributes | undefined): RequestAttributes {
  if (!a) return {};
  const out: RequestAttributes = { risk_tier: TIER_NAMES[a.riskTier] ?? 'unspecified' };
  if (a.acr !== undefined) out.acr = a.acr;
  if (a.certificateBound !== undefined) out.certificate_bound = a.certificateBound;
  if (a.time !== undefined) out.time = a.time;
  if (a.batchSize !== undefined) out.batch_size = a.batchSize;
  if (a.sourceAddress !== undefined) out.source_address = a.sourceAddress;
  if (a.peerSpiffeId !== undefined) out.peer_spiffe_id = a.peerSpiffeId;
  if (a.clientId !== undefined) out.client_id = a.clientId;
  if (a.scopes.length) out.scopes = a.scopes;
  return out;
}

/** Converts a protobuf request to the engine's form. */
export function fromProto(r: DecideRequest | undefined): DecisionRequest {
  if (!r) throw new PolicyError('ERR_POLICY_INVALID_REQUEST', 'request is required');
  return {
    subject: r.subject,
    org: r.org,
    object: r.object,
    action: r.action,
    roles: r.roles,
    attributes: attributesOf(r.attributes),
  };
}

function toProto(d: Decision): DecideResponse {
  return {
    effect: d.allowed ? Effect.EFFECT_ALLOW : Effect.EFFECT_DENY,
    matchedRule: d.matchedRule,
    revision: d.revision,
    reason: d.reason,
  };
}

/** Options of {@link createPolicyServiceImplementation}. */
export interface PolicyGrpcOptions {
  store: PolicyStore;
  auditor: DecisionAuditor;
  logger: Logger;
  now: () => Date;
}

/** The `bulwark.policy.v1.PolicyService` handlers. */
export function createPolicyServiceImplementation(options: PolicyGrpcOptions): PolicyServiceServer {
  const { store, auditor, logger, now } = options;
  const context = (call: Parameters<typeof peerIdentity>[0]) => {
    const peer = peerIdentity(call);
    return { via: 'decide' as const, ...(peer.spiffeId ? { peerSpiffeId: peer.spiffeId } : {}) };
  };
  return {
    decide: unaryHandler(
      async (call) =>
        toProto(await decideAndRecord(store, auditor, fromProto(call.request), context(call), now)),
      { logger },
    ),
    batchDecide: unaryHandler(
      async (call) => {
        const requests = call.request.requests;
        if (requests.length === 0 || requests.length > MAX_BATCH) {
          throw new PolicyError(
            'ERR_POLICY_INVALID_REQUEST',
            `requests must hold 1-${MAX_BATCH} entries`,
          );
        }
        // Validate everything first so a bad entry refuses the whole batch before anything is recorded.
        const converted = requests.map(fromProto);
        for (const r of converted) store.engine.normalize(r);
        const ctx = context(call);
        const revision = store.revision;
        const responses: DecideResponse[] = [];
        for (const r of converted)
          responses.push(toProto(await decideAndRecord(store, auditor, r, ctx, now)));
        return { responses, revision: responses[0]?.revision ?? revision };
      },
      { logger },
    ),
    explain: unaryHandler(
      async (call) => {
        const x = store.explain(fromProto(call.request.request));
        return {
          decision: toProto(x.decision),
          roles: x.roles,
          rules: x.rules.map((r) => ({
            rule: r.rule,
            effect: r.effect === 'allow' ? Effect.EFFECT_ALLOW : Effect.EFFECT_DENY,
            matched: r.matched,
            detail: r.detail,
          })),
        };
      },
      { logger },
    ),
    getRevision: unaryHandler(
      async () => ({
        revision: store.revision,
        ruleCount: store.engine.ruleCount,
        loadedAt: store.loadedAt,
      }),
      { logger },
    ),
    reload: unaryHandler(
      async (call) => {
        const peer = peerIdentity(call).spiffeId ?? 'unknown';
        logger.info({ event: 'policy.reload_requested', peer }, 'reload requested');
        // A policy administration act: audited first, and refused while audit cannot take it.
        const record = {
          time: now(),
          via: 'decide' as const,
          subject: peer,
          org: '',
          object: 'policy:reload',
          action: 'admin',
          allowed: true,
          matchedRule: '',
          revision: store.revision,
          reason: 'reload requested',
          peerSpiffeId: peer,
        };
        try {
          await auditor.record(record, true);
        } catch (err) {
          throw new PolicyError(
            'ERR_POLICY_AUDIT_UNAVAILABLE',
            'audit service unavailable: policy administration is refused until it is back',
            { cause: err },
          );
        }
        return store.reload();
      },
      { logger },
    ),
  };
}
