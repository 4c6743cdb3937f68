import type { Decision, DecisionRequest, PolicyEngine } from './engine.ts';
import { PolicyError } from './errors.ts';
import type { PolicyStore } from './policy-store.ts';

/** What is audited about one decision (never a token or any other secret). */
export interface DecisionRecord {
  time: Date;
  /** Which interface asked: the PolicyService or Envoy's ext_authz. */
  via: 'decide' | 'check';
  subject: string;
  org: string;
  object: string;
  action: string;
  allowed: boolean;
  matchedRule: string;
  revision: string;
  reason: string;
  peerSpiffeId?: string;
  sourceAddress?: string;
  clientId?: string;
}

/**
 * Where decision records go. `record` of a sensitive decision resolves only once the audit
 * service acknowledged it and rejects when it cannot; other records are queued and `record`
 * resolves at once.
 */
export interface DecisionAuditor {
  record(record: DecisionRecord, sensitive: boolean): Promise<void>;
  close(): Promise<void>;
}

/** An auditor that records nothing (policy tests, the CLI). */
export const noAudit: DecisionAuditor = {
  record: async () => undefined,
  close: async () => undefined,
};

/**
 * Decisions that are refused while audit is unreachable: model administration and anything
 * on policy objects.
 */
export function isSensitive(object: string, action: string): boolean {
  return object.startsWith('policy:') || object === 'model:admin' || action === 'admin';
}

/** Context of a decision for its audit record. */
export type DecisionContext = Pick<
  DecisionRecord,
  'via' | 'peerSpiffeId' | 'sourceAddress' | 'clientId'
>;

/**
 * Decides through the store and records the decision. A sensitive decision whose record the
 * audit service cannot acknowledge is refused (`ERR_POLICY_AUDIT_UNAVAILABLE`): fail closed.
 */
export async function decideAndRecord(
  store: PolicyStore,
  auditor: DecisionAuditor,
  request: DecisionRequest,
  context: DecisionContext,
  now: () => Date,
  engine?: PolicyEngine,
): Promise<Decision> {
  const decision = store.decide(request, engine);
  const sensitive = isSensitive(request.object, request.action);
  const record: DecisionRecord = {
    time: now(),
    subject: request.subject,
    org: request.org,
    object: request.object,
    action: request.action,
    allowed: decision.allowed,
    matchedRule: decision.matchedRule,
    revision: decision.revision,
    reason: decision.reason,
    ...context,
  };
  try {
    await auditor.record(record, sensitive);
  } catch (err) {
    if (sensitive) {
      throw new PolicyError(
        'ERR_POLICY_AUDIT_UNAVAILABLE',
        'audit service unavailable: administrative decisions are refused until it is back',
        { cause: err },
      );
    }
  }
  return decision;
}
