/**
 * Who may read the audit log (`read` on `audit:log`), and which organisations' records.
 * The service takes any {@link ReadAuthorizer}; provided are an allow-list of SPIFFE IDs
 * (explicit extra readers that see every organisation), the policy-backed authorizer in
 * `policy-read-authorizer.ts` (the default when a policy service is configured), and
 * {@link firstGrant} to chain them.
 */
import { compileAllowList, type PeerAllowList } from '../../mesh/kit/index.ts';

/** What the service knows about a caller when it asks whether it may read. */
export interface ReadCaller {
  /** SPIFFE ID of the client certificate. */
  spiffeId: string | undefined;
  /** SHA-256 thumbprint (base64url) of the client certificate, for `cnf.x5t#S256`. */
  certificateThumbprint?: string | undefined;
  /** The `authorization` metadata value, when the caller sent one. */
  authorization?: string | undefined;
  /** The organisation the request asks about; undefined for every organisation. */
  org?: string | undefined;
}

/** Every organisation (see {@link ReadGrant.org}). */
export const ALL_ORGS = '*';

/** A permission to read: whose records, and who the reader is (for logs). */
export interface ReadGrant {
  /** The organisation whose records may be read, or {@link ALL_ORGS}. */
  readonly org: string;
  /** Token subject or SPIFFE ID of the reader. */
  readonly reader: string;
}

/**
 * Decides whether a caller may read the log: a grant, or undefined for "not allowed". Throwing
 * counts as a denial too; an `AuditError` keeps its code (UNAUTHENTICATED, UNAVAILABLE, ...).
 */
export type ReadAuthorizer = (
  caller: ReadCaller,
) => Promise<ReadGrant | undefined> | ReadGrant | undefined;

/**
 * A read authorizer from an allow-list of SPIFFE IDs (exact, or prefixes ending in `/*`);
 * listed peers read every organisation.
 *
 * @example
 * ```ts
 * allowListReadAuthorizer(['spiffe://bulwark.local/svc/auditor']);
 * ```
 */
export function allowListReadAuthorizer(readers: PeerAllowList): ReadAuthorizer {
  const allowed = compileAllowList(readers);
  return ({ spiffeId }) =>
    spiffeId !== undefined && allowed(spiffeId) ? { org: ALL_ORGS, reader: spiffeId } : undefined;
}

/**
 * Asks each authorizer in turn and returns the first grant; a throwing one ends the chain
 * (fail closed).
 *
 * @example
 * ```ts
 * firstGrant(allowListReadAuthorizer(readers), policyReadAuthorizer({ decide, tokens }));
 * ```
 */
export function firstGrant(...authorizers: ReadAuthorizer[]): ReadAuthorizer {
  return async (caller) => {
    for (const authorize of authorizers) {
      const grant = await authorize(caller);
      if (grant) return grant;
    }
    return undefined;
  };
}

/** Whether a grant covers a record of `org` (`undefined` or empty: a record without one). */
export function grantCovers(grant: ReadGrant, org: string | undefined): boolean {
  return grant.org === ALL_ORGS || grant.org === org;
}
