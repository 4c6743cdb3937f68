import type { z } from 'zod';
import { isSecretKey } from '../telemetry/redact.ts';

/**
 * Turns schema issues into one line each: `<key path> [(from <VARIABLE>)]: <expected>, got
 * <found>`. Values under secret-looking keys are never echoed, and URL passwords are masked.
 */
export function formatIssues(
  issues: readonly z.core.$ZodIssue[],
  origins: Map<string, string>,
): string[] {
  return issues.map((issue) => {
    const path = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      return issue.keys
        .map((key) => {
          const at = [...path, key].join('.');
          return `${at}${originOf(at, origins)}: ${unknownKeyHelp(key)}`;
        })
        .join('\n  ');
    }
    const at = path.length ? path.join('.') : '(top level)';
    return `${at}${originOf(at, origins)}: ${issue.message}, got ${describeFound(issue.input, path)}`;
  });
}

function originOf(at: string, origins: Map<string, string>): string {
  for (const [path, variable] of origins) {
    if (at === path || at.startsWith(`${path}.`) || path.startsWith(`${at}.`)) {
      return ` (from ${variable})`;
    }
  }
  return '';
}

function unknownKeyHelp(key: string): string {
  if (/^(client_?secret|secret|password)$/i.test(key)) {
    return 'literal secrets are not accepted; put the secret in a file (mode 0600) and set clientSecretFile / passwordFile';
  }
  return 'unknown key (check the spelling; see the documented bulwark.yaml)';
}

function describeFound(value: unknown, path: readonly string[]): string {
  const key = path[path.length - 1];
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (key !== undefined && isSecretKey(key)) return 'a value (not shown)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') {
    const masked = value.replace(/(:\/\/[^/@:]*):[^/@]*@/, '$1:***@');
    return JSON.stringify(masked.length > 80 ? `${masked.slice(0, 77)}...` : masked);
  }
  return String(value);
}
