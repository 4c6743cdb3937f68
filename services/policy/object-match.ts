/**
 * Whether a request object matches a rule's object: `*` matches all; a trailing `*` is a prefix
 * pattern (`model:fraud-*`); a rule on `model:iris` also covers every version `model:iris@<v>`.
 */
export function objectMatches(object: string, pattern: string): boolean {
  if (pattern === '*' || pattern === object) return true;
  if (pattern.endsWith('*')) return object.startsWith(pattern.slice(0, -1));
  const at = object.lastIndexOf('@');
  return at > 0 && object.slice(0, at) === pattern;
}

/** `model:iris@3` → `model:iris`; objects without a version are returned unchanged. */
export function unversioned(object: string): string {
  const at = object.lastIndexOf('@');
  return at > 0 ? object.slice(0, at) : object;
}
