import { createHash } from 'node:crypto';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { RISK_TIERS, type RiskTierName } from './attributes.ts';
import { ALWAYS, compileCondition, ConditionSyntaxError, type Condition } from './condition.ts';
import { PolicyError } from './errors.ts';

/** One rule after compilation: a single subject, org, object and action (a Casbin `p` row). */
export interface CompiledRule {
  /** Rule id from the policy file; every row expanded from one rule shares it. */
  readonly id: string;
  readonly effect: 'allow' | 'deny';
  /** A user (`acme/alice`) or a role name. */
  readonly subject: string;
  /** Organisation, or `*` for every organisation. */
  readonly org: string;
  /** Object, exact (`model:iris`) or a prefix pattern (`model:fraud-*`). */
  readonly object: string;
  /** Action, or `*`. */
  readonly action: string;
  readonly condition: Condition;
  /** Position in the policy, for stable ordering of allows. */
  readonly index: number;
}

/** A role grant (a Casbin `g` row): `member` holds `role` inside `org`. */
export interface Grant {
  readonly member: string;
  readonly role: string;
  readonly org: string;
}

/** A validated, compiled policy. */
export interface CompiledPolicy {
  readonly models: ReadonlyMap<string, { readonly risk: RiskTierName }>;
  readonly grants: readonly Grant[];
  readonly rules: readonly CompiledRule[];
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const SUBJECT = /^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,254}$/;
const OBJECT = /^(\*|[a-z][a-z0-9-]*:(\*|[A-Za-z0-9][A-Za-z0-9._@-]{0,126}\*?))$/;
const ACTION = /^(\*|[a-z][a-z0-9-]{0,62})$/;

const oneOrMany = <T extends z.ZodType>(item: T) =>
  z.union([item, z.array(item).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]));

const ruleSchema = z.strictObject({
  id: z.string().regex(NAME, 'rule id: lower-case letters, digits, ".", "_", "-"'),
  description: z.string().optional(),
  effect: z.enum(['allow', 'deny']),
  subject: oneOrMany(z.string().regex(SUBJECT, 'subject: a user id or role name')),
  org: oneOrMany(z.union([z.literal('*'), z.string().regex(NAME, 'org: an organisation name')])),
  object: oneOrMany(z.string().regex(OBJECT, 'object: "<kind>:<name>", "*" only at the end')),
  action: oneOrMany(z.string().regex(ACTION, 'action: a lower-case word or "*"')),
  when: z.string().optional(),
});

const documentSchema = z.strictObject({
  version: z.literal(1),
  description: z.string().optional(),
  models: z
    .record(
      z.string().regex(NAME, 'model name'),
      z.strictObject({ risk: z.enum(RISK_TIERS), description: z.string().optional() }),
    )
    .default({}),
  organisations: z
    .record(
      z.string().regex(NAME, 'organisation name'),
      z.strictObject({
        description: z.string().optional(),
        roles: z.record(z.string().regex(SUBJECT), z.array(z.string().regex(SUBJECT))).default({}),
        members: z
          .record(z.string().regex(SUBJECT), z.array(z.string().regex(SUBJECT)))
          .default({}),
      }),
    )
    .default({}),
  rules: z.array(ruleSchema).max(1_000_000),
});

/** The policy file as written (YAML), before compilation. */
export type PolicyDocument = z.input<typeof documentSchema>;

/** Maximum size of a policy source, so a runaway file cannot exhaust memory. */
export const MAX_POLICY_BYTES = 64 * 1024 * 1024;

function invalid(source: string, detail: string, cause?: unknown): PolicyError {
  return new PolicyError('ERR_POLICY_INVALID', `${source}: ${detail}`, { cause });
}

/**
 * Validates and compiles a policy document (already parsed from YAML or read from storage).
 * Throws {@link PolicyError} `ERR_POLICY_INVALID` whose message names the bad key or rule.
 */
export function compilePolicy(input: unknown, source = 'policy'): CompiledPolicy {
  const parsed = documentSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length ? issue.path.join('.') : '(top level)';
    throw invalid(source, `${where}: ${issue.message}`);
  }
  const doc = parsed.data;
  const models = new Map(Object.entries(doc.models).map(([name, m]) => [name, { risk: m.risk }]));
  const grants: Grant[] = [];
  for (const [org, o] of Object.entries(doc.organisations)) {
    for (const [role, parents] of Object.entries(o.roles)) {
      for (const parent of parents) grants.push({ member: role, role: parent, org });
    }
    for (const [member, roles] of Object.entries(o.members)) {
      for (const role of roles) grants.push({ member, role, org });
    }
  }
  const rules: CompiledRule[] = [];
  const seen = new Set<string>();
  const conditions = new Map<string, Condition>();
  for (const [i, rule] of doc.rules.entries()) {
    if (seen.has(rule.id)) throw invalid(source, `rules.${i}: duplicate rule id "${rule.id}"`);
    seen.add(rule.id);
    let condition = ALWAYS;
    if (rule.when !== undefined) {
      const cached = conditions.get(rule.when);
      try {
        condition = cached ?? compileCondition(rule.when);
      } catch (err) {
        if (err instanceof ConditionSyntaxError) {
          throw invalid(source, `rule "${rule.id}": when: ${err.message}`, err);
        }
        throw err;
      }
      conditions.set(rule.when, condition);
    }
    for (const subject of rule.subject)
      for (const org of rule.org)
        for (const object of rule.object)
          for (const action of rule.action)
            rules.push({
              id: rule.id,
              effect: rule.effect,
              subject,
              org,
              object,
              action,
              condition,
              index: rules.length,
            });
  }
  return { models, grants, rules };
}

/** Stored rows of a policy (PostgreSQL): Casbin-style `p`/`g` rows plus `m` catalogue rows. */
export interface PolicyRow {
  ptype: string;
  values: string[];
}

/**
 * Validates and compiles stored rows: `p` = subject, org, object, action, condition, effect, id;
 * `g` = member, role, org; `m` = model name, risk tier. Field rules are those of the YAML form.
 */
export function compilePolicyRows(
  rows: readonly PolicyRow[],
  source = 'policy rows',
): CompiledPolicy {
  const models = new Map<string, { risk: RiskTierName }>();
  const grants: Grant[] = [];
  const rules: CompiledRule[] = [];
  const conditions = new Map<string, Condition>();
  for (const [i, row] of rows.entries()) {
    const v = row.values;
    const at = `row ${i + 1} (${row.ptype})`;
    if (row.ptype === 'm') {
      if (!NAME.test(v[0] ?? '') || !RISK_TIERS.includes(v[1] as never))
        throw invalid(source, `${at}: bad model entry`);
      models.set(v[0]!, { risk: v[1] as RiskTierName });
    } else if (row.ptype === 'g') {
      const [member = '', role = '', org = ''] = v;
      if (!SUBJECT.test(member) || !SUBJECT.test(role) || !NAME.test(org))
        throw invalid(source, `${at}: bad grant`);
      grants.push({ member, role, org });
    } else if (row.ptype === 'p') {
      const [subject, org, object, action, when = '', effect, id] = v;
      const parsed = ruleSchema.safeParse({
        id,
        effect,
        subject,
        org,
        object,
        action,
        ...(when ? { when } : {}),
      });
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw invalid(source, `${at}: ${issue.path.join('.')}: ${issue.message}`);
      }
      let condition = ALWAYS;
      if (when) {
        try {
          condition = conditions.get(when) ?? compileCondition(when);
        } catch (err) {
          throw invalid(source, `${at}: rule "${id}": when: ${(err as Error).message}`, err);
        }
        conditions.set(when, condition);
      }
      rules.push({
        id: id!,
        effect: effect as 'allow' | 'deny',
        subject: subject!,
        org: org!,
        object: object!,
        action: action!,
        condition,
        index: rules.length,
      });
    } else {
      throw invalid(source, `${at}: unknown row type`);
    }
  }
  return { models, grants, rules };
}

/** The stored rows of a compiled policy, the inverse of {@link compilePolicyRows}. */
export function policyRows(policy: CompiledPolicy): PolicyRow[] {
  const { p, g } = casbinRows(policy);
  return [
    ...[...policy.models].map(([name, m]) => ({ ptype: 'm', values: [name, m.risk] })),
    ...g.map((values) => ({ ptype: 'g', values })),
    ...p.map((values) => ({ ptype: 'p', values })),
  ];
}

/** Parses YAML text and compiles it; syntax errors name the line. */
export function compilePolicyYaml(text: string, source = 'policy.yaml'): CompiledPolicy {
  if (Buffer.byteLength(text) > MAX_POLICY_BYTES) throw invalid(source, 'file is too large');
  let data: unknown;
  try {
    data = parseYaml(text, { maxAliasCount: 100 });
  } catch (err) {
    const where =
      err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}` : '';
    throw invalid(source, `YAML syntax error${where}`, err);
  }
  return compilePolicy(data, source);
}

/** The Casbin rows of a compiled policy: `p` rows and `g` rows, in policy order. */
export function casbinRows(policy: CompiledPolicy): { p: string[][]; g: string[][] } {
  return {
    p: policy.rules.map((r) => [
      r.subject,
      r.org,
      r.object,
      r.action,
      r.condition.source,
      r.effect,
      r.id,
    ]),
    g: policy.grants.map((g) => [g.member, g.role, g.org]),
  };
}

/**
 * The revision: SHA-256 over the model text and the canonical rows, so the same policy has the
 * same revision whether it came from a file or from PostgreSQL.
 */
export function policyRevision(modelText: string, policy: CompiledPolicy): string {
  const { p, g } = casbinRows(policy);
  const models = [...policy.models.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
  const hash = createHash('sha256');
  // Comments and blank lines are not content: only the model's definitions are hashed.
  const definitions = modelText
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  hash.update(definitions.join('\n'));
  hash.update('\u0000');
  hash.update(JSON.stringify({ models, g, p }));
  return `sha256:${hash.digest('hex')}`;
}
