/**
 * Who may read the audit log (`audit:read` on `audit:log`). The service takes any
 * {@link ReadAuthorizer}; two are provided: a plain allow-list of SPIFFE IDs (the default,
 * empty unless configured), and one that asks the policy service.
 */
import { DecideRequest, Effect, type DecideResponse } from '../../gen/bulwark/policy/v1/policy.ts';
import { compileAllowList, type PeerAllowList } from '../../mesh/kit/index.ts';

/** Decides whether a caller may read the log. Throwing counts as a denial. */
export type ReadAuthorizer = (caller: {
  spiffeId: string | undefined;
}) => Promise<boolean> | boolean;

/**
 * A read authorizer from an allow-list of SPIFFE IDs (exact, or prefixes ending in `/*`).
 *
 * @example
 * ```ts
 * allowListReadAuthorizer(['spiffe://bulwark.local/svc/auditor']);
 * ```
 */
export function allowListReadAuthorizer(readers: PeerAllowList): ReadAuthorizer {
  const allowed = compileAllowList(readers);
  return ({ spiffeId }) => spiffeId !== undefined && allowed(spiffeId);
}

/**
 * A read authorizer that asks the policy service: subject = the caller's SPIFFE ID, object
 * `audit:log`, action `read`; only an explicit allow reads.
 *
 * @example
 * ```ts
 * const decide = promisify(policyClient.decide.bind(policyClient));
 * policyReadAuthorizer(decide);
 * ```
 */
export function policyReadAuthorizer(
  decide: (request: DecideRequest) => Promise<DecideResponse>,
  options: { org?: string } = {},
): ReadAuthorizer {
  return async ({ spiffeId }) => {
    if (!spiffeId) return false;
    const answer = await decide(
      DecideRequest.fromPartial({
        subject: spiffeId,
        org: options.org ?? '',
        object: 'audit:log',
        action: 'read',
      }),
    );
    return answer.effect === Effect.EFFECT_ALLOW;
  };
}
