import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import {
  ATTRIBUTE_KINDS,
  isAttributeName,
  RISK_TIERS,
  type RequestAttributes,
} from './attributes.ts';
import type { Decision, DecisionRequest, PolicyEngine } from './engine.ts';
import { PolicyError } from './errors.ts';

const attributesSchema = z.strictObject({
  risk_tier: z.enum(RISK_TIERS).optional(),
  acr: z.string().optional(),
  certificate_bound: z.boolean().optional(),
  time: z.iso
    .datetime({ offset: true })
    .transform((s) => new Date(s))
    .optional(),
  batch_size: z.int().nonnegative().optional(),
  source_address: z.string().optional(),
  peer_spiffe_id: z.string().optional(),
  client_id: z.string().optional(),
  scopes: z.array(z.string()).optional(),
});

const caseSchema = z.strictObject({
  name: z.string().min(1),
  subject: z.string(),
  org: z.string(),
  object: z.string(),
  action: z.string(),
  roles: z.array(z.string()).optional(),
  attributes: attributesSchema.optional(),
  expect: z.enum(['allow', 'deny']),
  /** Optional: the rule that must decide (empty string for the default deny). */
  rule: z.string().optional(),
});

const casesSchema = z.strictObject({ cases: z.array(caseSchema).min(1) });

/** One expected decision from a cases file. */
export type PolicyCase = z.output<typeof caseSchema>;

/** The outcome of one case. */
export interface PolicyCaseResult {
  case: PolicyCase;
  decision?: Decision;
  /** Why the case failed; undefined when it passed. */
  failure?: string;
}

/** Parses a cases YAML file; throws `ERR_POLICY_INVALID` naming the bad key. */
export function parsePolicyCases(text: string, source = 'cases.yaml'): PolicyCase[] {
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (err) {
    throw new PolicyError('ERR_POLICY_INVALID', `${source}: YAML syntax error`, { cause: err });
  }
  const parsed = casesSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new PolicyError(
      'ERR_POLICY_INVALID',
      `${source}: ${issue.path.join('.')}: ${issue.message}`,
    );
  }
  return parsed.data.cases;
}

/**
 * Runs every case against an engine.
 *
 * @example
 * ```ts
 * const results = runPolicyCases(engine, parsePolicyCases(text));
 * const failed = results.filter((r) => r.failure);
 * ```
 */
export function runPolicyCases(engine: PolicyEngine, cases: PolicyCase[]): PolicyCaseResult[] {
  return cases.map((c) => {
    const request: DecisionRequest = {
      subject: c.subject,
      org: c.org,
      object: c.object,
      action: c.action,
      roles: c.roles ?? [],
      attributes: c.attributes ?? {},
    };
    let decision: Decision;
    try {
      decision = engine.decide(request);
    } catch (err) {
      return {
        case: c,
        failure: `request refused: ${err instanceof Error ? err.message : String(err)}`,
      };
    }
    const got = decision.allowed ? 'allow' : 'deny';
    if (got !== c.expect)
      return {
        case: c,
        decision,
        failure: `expected ${c.expect}, got ${got} (${decision.reason})`,
      };
    if (c.rule !== undefined && c.rule !== decision.matchedRule) {
      return {
        case: c,
        decision,
        failure: `expected rule "${c.rule}", decided by "${decision.matchedRule}"`,
      };
    }
    return { case: c, decision };
  });
}

/**
 * Reads `key=value` arguments into request attributes (`acr=mfa certificate_bound=true
 * batch_size=4 scopes=model:infer,audit:read time=2026-01-01T10:00:00Z`).
 */
export function parseAttributeArgs(args: readonly string[]): RequestAttributes {
  const out: Record<string, unknown> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    const key = eq > 0 ? arg.slice(0, eq) : arg;
    const value = eq > 0 ? arg.slice(eq + 1) : '';
    if (key === 'time') {
      const t = new Date(value);
      if (Number.isNaN(t.getTime())) throw new TypeError(`time: "${value}" is not a date`);
      out.time = t;
      continue;
    }
    if (!isAttributeName(key) || key === 'hour') {
      throw new TypeError(
        `unknown attribute "${key}" (known: ${Object.keys(ATTRIBUTE_KINDS)
          .filter((k) => k !== 'hour')
          .join(', ')}, time)`,
      );
    }
    switch (ATTRIBUTE_KINDS[key]) {
      case 'bool':
        if (value !== 'true' && value !== 'false')
          throw new TypeError(`${key}: expects true or false`);
        out[key] = value === 'true';
        break;
      case 'number':
        if (!/^\d+$/.test(value)) throw new TypeError(`${key}: expects a whole number`);
        out[key] = Number(value);
        break;
      case 'set':
        out[key] = value.split(',').filter(Boolean);
        break;
      case 'enum':
        if (!RISK_TIERS.includes(value as never))
          throw new TypeError(`${key}: expects one of ${RISK_TIERS.join(', ')}`);
        out[key] = value;
        break;
      default:
        out[key] = value;
    }
  }
  return out as RequestAttributes;
}
