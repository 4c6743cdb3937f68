import { Counter, Gauge, type Registry } from 'prom-client';
import type { DecisionAuditor } from './decision-record.ts';
import type { PolicyStore } from './policy-store.ts';

/**
 * Registers the policy service's own metrics and returns an auditor wrapper that counts every
 * decision on its way to the real auditor:
 *
 * - `bulwark_policy_decisions_total{via, effect}`
 * - `bulwark_policy_cache_hits_total`, `bulwark_policy_cache_misses_total`
 * - `bulwark_policy_rules` (rules in the serving revision)
 */
export function instrumentPolicy(
  registry: Registry,
  store: PolicyStore,
  auditor: DecisionAuditor,
): DecisionAuditor {
  const decisions = new Counter({
    name: 'bulwark_policy_decisions_total',
    help: 'Policy decisions by interface and effect',
    labelNames: ['via', 'effect'] as const,
    registers: [registry],
  });
  new Counter({
    name: 'bulwark_policy_cache_hits_total',
    help: 'Decisions answered from the decision cache',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(store.cacheStats().hits);
    },
  });
  new Counter({
    name: 'bulwark_policy_cache_misses_total',
    help: 'Decisions computed by the engine',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(store.cacheStats().misses);
    },
  });
  new Gauge({
    name: 'bulwark_policy_rules',
    help: 'Rules in the serving policy revision',
    registers: [registry],
    collect() {
      this.set(store.engine.ruleCount);
    },
  });
  return {
    record(record, sensitive) {
      decisions.inc({ via: record.via, effect: record.allowed ? 'allow' : 'deny' });
      return auditor.record(record, sensitive);
    },
    close: () => auditor.close(),
  };
}
