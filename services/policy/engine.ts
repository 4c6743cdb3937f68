import type { AttributeValues, RequestAttributes } from './attributes.ts';
import { PolicyError } from './errors.ts';
import { objectMatches, unversioned } from './object-match.ts';
import { policyRevision, type CompiledPolicy, type CompiledRule } from './policy-document.ts';
import { validateModel } from './casbin-model.ts';

/** One authorisation question. */
export interface DecisionRequest {
  /** `<org>/<upstream sub>` or a workload name. */
  subject: string;
  /** Partner organisation (Casbin domain). */
  org: string;
  /** `model:<name>`, `model:<name>@<version>`, `audit:log`, `policy:<thing>`. */
  object: string;
  action: string;
  attributes?: RequestAttributes;
  /** Roles carried by the token, treated as extra grants for this one request. */
  roles?: readonly string[];
}

/** The answer. */
export interface Decision {
  allowed: boolean;
  /** Id of the deciding rule; empty for the default deny. */
  matchedRule: string;
  /** Revision the decision was made under. */
  revision: string;
  /** Safe, human-readable reason. */
  reason: string;
}

/** A rule looked at while explaining a decision. */
export interface RuleTrace {
  rule: string;
  effect: 'allow' | 'deny';
  matched: boolean;
  detail: string;
}

/** A decision with the roles and rules behind it. */
export interface Explanation {
  decision: Decision;
  roles: string[];
  rules: RuleTrace[];
}

/** A request after validation and attribute normalisation; the unit the cache keys on. */
export interface NormalizedRequest {
  subject: string;
  org: string;
  object: string;
  action: string;
  roles: string[];
  attributes: AttributeValues;
}

/** Everything the engine needs; `modelText` is model.conf. */
export interface PolicyEngineOptions {
  modelText: string;
  policy: CompiledPolicy;
  /** Clock for requests without a time. */
  now?: () => Date;
}

interface DomainIndex {
  exact: Map<string, CompiledRule[]>;
  prefixes: Map<string, CompiledRule[]>;
}

const MAX_FIELD = 256;
const ORG = /^[a-z0-9][a-z0-9._-]{0,62}$/;
// Printable ASCII without spaces: anything else cannot be a subject, org, object or action.
const FIELD = /^[\x21-\x7e]+$/;
/** Casbin's default role hierarchy depth. */
const MAX_ROLE_DEPTH = 10;

function checkField(name: string, value: unknown): string {
  if (
    typeof value !== 'string' ||
    value.length === 0 ||
    value.length > MAX_FIELD ||
    !FIELD.test(value)
  ) {
    throw new PolicyError(
      'ERR_POLICY_INVALID_REQUEST',
      `${name} must be 1-${MAX_FIELD} printable characters without spaces`,
    );
  }
  return value;
}

/**
 * An immutable, indexed view of one policy revision. Decisions look up candidate rules by
 * organisation and object (exact, unversioned, prefix patterns) instead of scanning every rule,
 * so their cost does not grow with the number of organisations or rules elsewhere.
 *
 * @example
 * ```ts
 * const engine = createPolicyEngine({ modelText, policy: compilePolicyYaml(yaml) });
 * engine.decide({ subject: 'acme/alice', org: 'acme', object: 'model:iris', action: 'infer' });
 * ```
 */
export class PolicyEngine {
  readonly revision: string;
  readonly ruleCount: number;
  readonly policy: CompiledPolicy;
  private readonly now: () => Date;
  private readonly domains = new Map<string, DomainIndex>();
  /** org → member → directly granted roles. */
  private readonly grants = new Map<string, Map<string, string[]>>();
  private readonly roleMemo = new Map<string, readonly string[]>();

  constructor(options: PolicyEngineOptions) {
    validateModel(options.modelText);
    this.policy = options.policy;
    this.now = options.now ?? (() => new Date());
    this.revision = policyRevision(options.modelText, options.policy);
    this.ruleCount = options.policy.rules.length;
    for (const rule of options.policy.rules) {
      let index = this.domains.get(rule.org);
      if (!index) {
        index = { exact: new Map(), prefixes: new Map() };
        this.domains.set(rule.org, index);
      }
      const [map, key] = rule.object.endsWith('*')
        ? [index.prefixes, rule.object.slice(0, -1)]
        : [index.exact, rule.object];
      const list = map.get(key);
      if (list) list.push(rule);
      else map.set(key, [rule]);
    }
    for (const g of options.policy.grants) {
      let members = this.grants.get(g.org);
      if (!members) {
        members = new Map();
        this.grants.set(g.org, members);
      }
      const roles = members.get(g.member);
      if (roles) roles.push(g.role);
      else members.set(g.member, [g.role]);
    }
  }

  /** Validates a request and resolves its attributes (model risk tier, hour). */
  normalize(request: DecisionRequest): NormalizedRequest {
    const subject = checkField('subject', request.subject);
    const org = checkField('org', request.org);
    if (!ORG.test(org)) {
      throw new PolicyError('ERR_POLICY_INVALID_REQUEST', 'org must be an organisation name');
    }
    const object = checkField('object', request.object);
    const action = checkField('action', request.action);
    const roles = [...(request.roles ?? [])].map((r) => checkField('role', r)).sort();
    const { time, ...given } = request.attributes ?? {};
    const attributes: AttributeValues = { ...given };
    // The policy's model catalogue is authoritative, so a caller cannot lower a model's risk.
    if (object.startsWith('model:')) {
      const declared = this.policy.models.get(unversioned(object).slice('model:'.length));
      if (declared) attributes.risk_tier = declared.risk;
    }
    const at = time ?? this.now();
    attributes.hour = Number.isNaN(at.getTime()) ? undefined : at.getUTCHours();
    for (const key of Object.keys(attributes) as (keyof AttributeValues)[]) {
      if (attributes[key] === undefined) delete attributes[key];
    }
    return { subject, org, object, action, roles, attributes };
  }

  /** Decides a request (uncached; see `PolicyStore` for the cache). */
  decide(request: DecisionRequest): Decision {
    return this.decideNormalized(this.normalize(request));
  }

  /** Whether `model:<name>` is declared in the policy's model catalogue. */
  knowsModel(name: string): boolean {
    return this.policy.models.has(name);
  }

  /** Roles of a subject in an organisation, inherited ones included. */
  rolesOf(subject: string, org: string, tokenRoles: readonly string[] = []): string[] {
    const all = new Set<string>();
    for (const start of [subject, ...tokenRoles]) {
      for (const r of this.closure(start, org)) all.add(r);
    }
    all.delete(subject);
    return [...all].sort();
  }

  decideNormalized(req: NormalizedRequest): Decision {
    const subjects = this.subjectsOf(req);
    let allow: CompiledRule | undefined;
    for (const rule of this.candidates(req.org, req.object)) {
      if (rule.action !== '*' && rule.action !== req.action) continue;
      if (!subjects.has(rule.subject)) continue;
      const v = rule.condition.evaluate(req.attributes);
      if (rule.effect === 'deny') {
        if (v !== false) return this.result(false, rule.id, `denied by rule "${rule.id}"`);
      } else if (v === true && (!allow || rule.index < allow.index)) {
        allow = rule;
      }
    }
    if (allow) return this.result(true, allow.id, `allowed by rule "${allow.id}"`);
    return this.result(
      false,
      '',
      `no rule allows "${req.action}" on "${req.object}" in "${req.org}"`,
    );
  }

  /** Decides and lists every candidate rule with why it applied or not. */
  explain(request: DecisionRequest): Explanation {
    const req = this.normalize(request);
    const subjects = this.subjectsOf(req);
    const rules: RuleTrace[] = [];
    for (const rule of this.candidates(req.org, req.object)) {
      let detail: string;
      let matched = false;
      if (rule.action !== '*' && rule.action !== req.action) detail = `action is "${rule.action}"`;
      else if (!subjects.has(rule.subject)) detail = `subject "${rule.subject}" is not held`;
      else {
        const v = rule.condition.evaluate(req.attributes);
        matched = rule.effect === 'deny' ? v !== false : v === true;
        const cond = rule.condition.source || '(none)';
        detail = `condition ${cond} is ${v === undefined ? 'unknown (attribute absent)' : String(v)}`;
      }
      rules.push({ rule: rule.id, effect: rule.effect, matched, detail });
    }
    return {
      decision: this.decideNormalized(req),
      roles: this.rolesOf(req.subject, req.org, req.roles),
      rules,
    };
  }

  private result(allowed: boolean, matchedRule: string, reason: string): Decision {
    return { allowed, matchedRule, revision: this.revision, reason };
  }

  private subjectsOf(req: NormalizedRequest): Set<string> {
    const subjects = new Set(this.closure(req.subject, req.org));
    for (const role of req.roles) for (const r of this.closure(role, req.org)) subjects.add(r);
    return subjects;
  }

  /** The name itself and every role it reaches in `org`, memoised per revision. */
  private closure(name: string, org: string): readonly string[] {
    const key = `${org}\u0000${name}`;
    const memo = this.roleMemo.get(key);
    if (memo) return memo;
    const members = this.grants.get(org);
    const seen = new Set([name]);
    let frontier = [name];
    for (let depth = 0; depth < MAX_ROLE_DEPTH && frontier.length && members; depth += 1) {
      const next: string[] = [];
      for (const m of frontier) {
        for (const r of members.get(m) ?? []) {
          if (!seen.has(r)) {
            seen.add(r);
            next.push(r);
          }
        }
      }
      frontier = next;
    }
    const result = [...seen];
    if (this.roleMemo.size > 100_000) this.roleMemo.clear();
    this.roleMemo.set(key, result);
    return result;
  }

  private *candidates(org: string, object: string): Generator<CompiledRule> {
    const base = unversioned(object);
    for (const dom of [org, '*']) {
      const index = this.domains.get(dom);
      if (!index) continue;
      yield* index.exact.get(object) ?? [];
      if (base !== object) yield* index.exact.get(base) ?? [];
      yield* index.exact.get('*') ?? [];
      for (const [prefix, rules] of index.prefixes) {
        if (object.startsWith(prefix)) yield* rules;
      }
    }
  }
}

/** Builds the engine for one revision; throws `ERR_POLICY_INVALID` for a bad model. */
export function createPolicyEngine(options: PolicyEngineOptions): PolicyEngine {
  return new PolicyEngine(options);
}

export { objectMatches };
