import { newEnforcer, newModelFromString, type Enforcer, type Model } from 'casbin';
import type { AttributeValues } from './attributes.ts';
import { PolicyError } from './errors.ts';
import { casbinRows, type CompiledPolicy } from './policy-document.ts';
import { objectMatches } from './object-match.ts';

/** The definitions the engine implements; a model.conf that says anything else is refused. */
const EXPECTED = {
  r: 'sub, dom, obj, act, attrs',
  p: 'sub, dom, obj, act, cond, eft, id',
  g: '_, _, _',
  e: 'some(where (p_eft == allow)) && !some(where (p_eft == deny))',
  m:
    'g(r_sub, p_sub, r_dom) && (p_dom == r_dom || p_dom == "*") && objectMatch(r_obj, p_obj) && ' +
    '(p_act == r_act || p_act == "*") && condition(p_cond, p_eft, r_attrs)',
} as const;

const squash = (s: string): string => s.replace(/\s+/g, ' ').trim();

function read(model: Model, sec: string, key: string): string | undefined {
  return model.model.get(sec)?.get(key)?.value;
}

/**
 * Parses model.conf with Casbin and checks that it states the semantics the engine serves.
 * Throws `ERR_POLICY_INVALID` naming the section that differs.
 */
export function validateModel(modelText: string, source = 'model.conf'): Model {
  const code = modelText.split('\n').filter((line) => !line.trimStart().startsWith('#'));
  if (code.some((line) => /\beval\s*\(/.test(line))) {
    throw new PolicyError('ERR_POLICY_INVALID', `${source}: eval() is not allowed in the model`);
  }
  let model: Model;
  try {
    model = newModelFromString(modelText);
  } catch (err) {
    throw new PolicyError('ERR_POLICY_INVALID', `${source}: not a valid Casbin model`, {
      cause: err,
    });
  }
  const sections: [string, string, string][] = [
    ['r', 'r', 'request_definition'],
    ['p', 'p', 'policy_definition'],
    ['g', 'g', 'role_definition'],
    ['e', 'e', 'policy_effect'],
    ['m', 'm', 'matchers'],
  ];
  for (const [sec, key, name] of sections) {
    const got = read(model, sec, key);
    if (got === undefined || squash(got) !== squash(EXPECTED[sec as keyof typeof EXPECTED])) {
      throw new PolicyError(
        'ERR_POLICY_INVALID',
        `${source}: [${name}] differs from the semantics the policy service implements`,
      );
    }
  }
  return model;
}

/**
 * Builds a plain Casbin enforcer over the same model and rows. It scans every rule per request,
 * so the service does not serve from it; it is the reference the indexed engine is tested and
 * benchmarked against.
 */
export async function createReferenceEnforcer(
  modelText: string,
  policy: CompiledPolicy,
): Promise<Enforcer> {
  const enforcer = await newEnforcer(validateModel(modelText));
  const conditions = new Map(policy.rules.map((r) => [r.condition.source, r.condition]));
  await enforcer.addFunction('objectMatch', (obj: string, pattern: string) =>
    objectMatches(obj, pattern),
  );
  await enforcer.addFunction(
    'condition',
    (source: string, effect: string, attrs: AttributeValues) => {
      const condition = conditions.get(source);
      if (!condition) return false;
      const v = condition.evaluate(attrs);
      return effect === 'deny' ? v !== false : v === true;
    },
  );
  const { p, g } = casbinRows(policy);
  if (p.length) await enforcer.addPolicies(p);
  if (g.length) await enforcer.addGroupingPolicies(g);
  return enforcer;
}
