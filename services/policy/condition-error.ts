/** Thrown for a condition that does not parse or type-check; the message names the problem. */
export class ConditionSyntaxError extends Error {
  override name = 'ConditionSyntaxError';
}
