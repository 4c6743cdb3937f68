import { CaError } from './ca-error.ts';

/** The trust domain used when none is configured. */
export const DEFAULT_TRUST_DOMAIN = 'bulwark.local';

// SPIFFE trust domains: lowercase letters, digits, dots, dashes and underscores.
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
// One path segment of a Bulwark SPIFFE ID: a short lowercase name.
const SEGMENT = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Throws {@link CaError} `ERR_CA_INVALID_TRUST_DOMAIN` unless `trustDomain` is valid. */
export function assertTrustDomain(trustDomain: string): void {
  if (!TRUST_DOMAIN.test(trustDomain)) {
    throw new CaError(
      'ERR_CA_INVALID_TRUST_DOMAIN',
      `trust domain "${trustDomain}" is invalid: use lowercase letters, digits, ".", "-" or "_"`,
    );
  }
}

/** Throws {@link CaError} `ERR_CA_INVALID_NAME` unless `name` is a valid name segment. */
export function assertName(kind: string, name: string): void {
  if (!SEGMENT.test(name)) {
    throw new CaError(
      'ERR_CA_INVALID_NAME',
      `${kind} "${name}" is invalid: use 1-63 lowercase letters, digits or inner "-"`,
    );
  }
}

/**
 * The SPIFFE ID of a mesh service: `spiffe://<trust-domain>/svc/<name>`.
 *
 * @example
 * ```ts
 * serviceSpiffeId('audit'); // 'spiffe://bulwark.local/svc/audit'
 * ```
 */
export function serviceSpiffeId(name: string, trustDomain = DEFAULT_TRUST_DOMAIN): string {
  assertTrustDomain(trustDomain);
  assertName('service name', name);
  return `spiffe://${trustDomain}/svc/${name}`;
}

/**
 * The SPIFFE ID of a partner organisation's client workload:
 * `spiffe://<trust-domain>/partner/<org>/<name>`. Partner IDs live under their own path so
 * that no partner certificate can ever match a service allow-list entry.
 *
 * @example
 * ```ts
 * partnerSpiffeId('acme', 'scorer'); // 'spiffe://bulwark.local/partner/acme/scorer'
 * ```
 */
export function partnerSpiffeId(
  org: string,
  name: string,
  trustDomain = DEFAULT_TRUST_DOMAIN,
): string {
  assertTrustDomain(trustDomain);
  assertName('organisation', org);
  assertName('client name', name);
  return `spiffe://${trustDomain}/partner/${org}/${name}`;
}

/** A SPIFFE ID split into its parts. */
export interface ParsedSpiffeId {
  trustDomain: string;
  /** Path segments after the trust domain, e.g. `['svc', 'audit']`. */
  path: string[];
}

/**
 * Parses and validates a SPIFFE ID (scheme `spiffe`, a valid trust domain, a non-empty path,
 * no query, fragment, port or user info).
 */
export function parseSpiffeId(id: string): ParsedSpiffeId {
  const match = /^spiffe:\/\/([^/]+)((?:\/[^/]+)+)$/.exec(id);
  const invalid = () => new CaError('ERR_CA_INVALID_SVID', `"${id}" is not a valid SPIFFE ID`);
  if (!match || /[?#%]/.test(id)) throw invalid();
  const trustDomain = match[1] ?? '';
  if (!TRUST_DOMAIN.test(trustDomain)) throw invalid();
  const path = (match[2] ?? '').slice(1).split('/');
  if (path.some((segment) => segment === '.' || segment === '..')) throw invalid();
  return { trustDomain, path };
}
