/**
 * One claim-to-role rule: when the upstream claim `claim` equals `value` (or, for an array
 * claim such as `groups`, contains it), the person gets `role`.
 */
export interface RoleMappingRule {
  claim: string;
  value: string | boolean | number;
  role: string;
}

/**
 * Maps upstream claims to mesh roles. Unknown claims map to nothing: roles are granted only by
 * an explicit rule (default deny).
 *
 * @example
 * ```ts
 * mapRoles({ groups: ['ml-engineers'] }, [{ claim: 'groups', value: 'ml-engineers', role: 'model-user' }]);
 * // → ['model-user']
 * ```
 */
export function mapRoles(
  claims: Record<string, unknown>,
  rules: readonly RoleMappingRule[],
  defaults: readonly string[] = [],
): string[] {
  const roles = new Set(defaults);
  for (const rule of rules) {
    const actual = claims[rule.claim];
    const matches = Array.isArray(actual) ? actual.includes(rule.value) : actual === rule.value;
    if (matches) roles.add(rule.role);
  }
  return [...roles].sort();
}

/** The domain part of an email address, lower-cased; undefined when it is not an address. */
export function emailDomain(email: unknown): string | undefined {
  if (typeof email !== 'string') return undefined;
  const at = email.lastIndexOf('@');
  if (at < 1 || at === email.length - 1) return undefined;
  return email.slice(at + 1).toLowerCase();
}
