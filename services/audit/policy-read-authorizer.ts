/**
 * Audit reads decided by the policy service ("only peers with `audit:read` — policy decides").
 *
 * - A caller with `authorization: Bearer <jwt>` is the token's subject: the token must verify
 *   (broker issuer, audience `urn:bulwark:audit`, ES256/EdDSA, `typ at+jwt`, exp/nbf), carry
 *   the `audit:read` scope, and — when certificate-bound (`cnf.x5t#S256`) — match the client
 *   certificate of this connection; partner clients (SPIFFE IDs outside `/svc/`) must use bound
 *   tokens. Policy is then asked `Decide(subject, org = token org, roles = token roles,
 *   audit:log, read)`, and a grant covers the token's organisation only.
 * - A caller without a token is its workload: `Decide(subject = SPIFFE ID, org = the
 *   organisation asked for, or the mesh's own name (the trust domain) for every organisation)`,
 *   so a rule with `org: '*'` lets a workload read everything.
 *
 * Only an explicit allow reads. A policy service that cannot answer denies (UNAVAILABLE), and
 * answers are reused for a moment (`cacheMs`) so a burst of pages asks once; an answer carrying
 * a new policy revision drops all remembered ones.
 */
import { Metadata } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  Attributes,
  DecideRequest,
  Effect,
  type DecideResponse,
  type PolicyServiceClient,
} from '../../gen/bulwark/policy/v1/policy.ts';
import type { TokenIdentity, TokenVerifier } from '../policy/token-verifier.ts';
import { AuditError } from './errors.ts';
import type { ReadAuthorizer, ReadCaller, ReadGrant } from './read-authorizer.ts';
import { ALL_ORGS } from './read-authorizer.ts';

/** Options of {@link policyReadAuthorizer}; every default is listed. */
export interface PolicyReadAuthorizerOptions {
  /** `PolicyService.Decide`, promisified with a deadline. */
  decide: (request: DecideRequest) => Promise<DecideResponse>;
  /**
   * Verifies bearer tokens for audience `urn:bulwark:audit` (`createTokenVerifier` of the
   * policy service). Without one, every bearer token is refused.
   */
  tokens?: TokenVerifier;
  /** Organisation name asked about when a workload reads every organisation. Default `bulwark.local`. */
  meshOrg?: string;
  /** Scope a token must carry. Default `audit:read`. */
  scope?: string;
  /** How long an answer is reused, in ms. Default 2000; 0 disables. */
  cacheMs?: number;
  /** Most answers remembered. Default 10,000. */
  cacheSize?: number;
  /** Whether a peer must present certificate-bound tokens. Default: IDs outside `/svc/`. */
  requiresBoundToken?: (spiffeId: string) => boolean;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
  logger?: Logger;
}

const BEARER = /^Bearer ([A-Za-z0-9_\-.]+)$/;
// grpc-js status codes meaning "could not get an answer" rather than "answered no".
const UNREACHABLE = new Set([1, 4, 14]);

const unauthenticated = (message: string, cause?: unknown) =>
  new AuditError('ERR_AUDIT_UNAUTHENTICATED', message, { cause });
const denied = (message: string) => new AuditError('ERR_AUDIT_PERMISSION_DENIED', message);

/**
 * A read authorizer that asks the policy service.
 *
 * @example
 * ```ts
 * const tokens = createTokenVerifier({ issuer, audience: 'urn:bulwark:audit', keys });
 * const readAuthorizer = policyReadAuthorizer({ decide: promiseDecide(policyClient), tokens });
 * ```
 */
export function policyReadAuthorizer(options: PolicyReadAuthorizerOptions): ReadAuthorizer {
  const o = {
    meshOrg: 'bulwark.local',
    scope: 'audit:read',
    cacheMs: 2000,
    cacheSize: 10_000,
    requiresBoundToken: (id: string) => !/^spiffe:\/\/[^/]+\/svc\//.test(id),
    now: Date.now,
    ...options,
  };
  const cache = new Map<string, { allowed: boolean; until: number }>();
  let revision: string | undefined;

  const ask = async (request: DecideRequest, who: string): Promise<boolean> => {
    const key = JSON.stringify(DecideRequest.toJSON(request));
    const at = o.now();
    const hit = cache.get(key);
    if (hit && hit.until > at) return hit.allowed;
    let answer: DecideResponse;
    try {
      answer = await o.decide(request);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      o.logger?.warn(
        { reader: who, err: { message: (err as Error).message, code } },
        'policy service did not answer an audit read authorisation; denying (fail closed)',
      );
      if (typeof code === 'number' && !UNREACHABLE.has(code))
        throw denied('the policy service refused the read authorisation request');
      throw new AuditError(
        'ERR_AUDIT_POLICY_UNAVAILABLE',
        'the policy service is unavailable: audit reads are refused until it answers',
        { cause: err },
      );
    }
    const allowed = answer.effect === Effect.EFFECT_ALLOW;
    // A new policy revision makes every remembered answer stale.
    if (answer.revision !== revision) {
      cache.clear();
      revision = answer.revision;
    }
    o.logger?.info(
      {
        reader: who,
        org: request.org,
        allowed,
        rule: answer.matchedRule,
        revision: answer.revision,
      },
      'audit read authorisation decided by policy',
    );
    if (o.cacheMs > 0) {
      if (cache.size >= o.cacheSize) cache.delete(cache.keys().next().value!);
      cache.set(key, { allowed, until: at + o.cacheMs });
    }
    return allowed;
  };

  const identityOf = async (caller: ReadCaller): Promise<TokenIdentity> => {
    const match = BEARER.exec(caller.authorization ?? '');
    if (!match) throw unauthenticated('malformed bearer token');
    if (!o.tokens) throw unauthenticated('this audit service accepts no bearer tokens');
    let identity: TokenIdentity;
    try {
      identity = await o.tokens.verify(match[1]!);
    } catch (err) {
      // The verifier's messages are safe ("token expired", "invalid token"); keep them.
      throw unauthenticated((err as Error).message || 'invalid token', err);
    }
    const bound = identity.certificateThumbprint;
    if (bound !== undefined && bound !== caller.certificateThumbprint)
      throw unauthenticated('token is bound to a different client certificate');
    if (bound === undefined && caller.spiffeId && o.requiresBoundToken(caller.spiffeId))
      throw unauthenticated('this client must use a token bound to its certificate (RFC 8705)');
    if (!identity.scopes.includes(o.scope)) throw denied(`token lacks the ${o.scope} scope`);
    return identity;
  };

  return async (caller): Promise<ReadGrant | undefined> => {
    if (caller.authorization !== undefined) {
      const identity = await identityOf(caller);
      if (caller.org !== undefined && caller.org !== identity.org)
        throw denied(`a reader for ${identity.org} may not read the records of ${caller.org}`);
      const request = DecideRequest.fromPartial({
        subject: identity.subject,
        org: identity.org,
        roles: identity.roles,
        object: 'audit:log',
        action: 'read',
        attributes: Attributes.fromPartial({
          certificateBound: identity.certificateThumbprint !== undefined,
          scopes: identity.scopes,
          ...(identity.acr !== undefined ? { acr: identity.acr } : {}),
          ...(identity.clientId !== undefined ? { clientId: identity.clientId } : {}),
          ...(caller.spiffeId ? { peerSpiffeId: caller.spiffeId } : {}),
        }),
      });
      return (await ask(request, identity.subject))
        ? { org: identity.org, reader: identity.subject }
        : undefined;
    }
    if (!caller.spiffeId) return undefined;
    const request = DecideRequest.fromPartial({
      subject: caller.spiffeId,
      org: caller.org ?? o.meshOrg,
      object: 'audit:log',
      action: 'read',
      attributes: Attributes.fromPartial({ peerSpiffeId: caller.spiffeId }),
    });
    return (await ask(request, caller.spiffeId))
      ? { org: caller.org ?? ALL_ORGS, reader: caller.spiffeId }
      : undefined;
  };
}

/**
 * `PolicyService.Decide` of a grpc-js client as a promise with a deadline.
 *
 * @example
 * ```ts
 * const decide = promiseDecide(createMeshClient(PolicyServiceClient, { ... }));
 * ```
 */
export function promiseDecide(
  client: PolicyServiceClient,
  deadlineMs = 2000,
): (request: DecideRequest) => Promise<DecideResponse> {
  return (request) =>
    new Promise((resolve, reject) => {
      client.decide(request, new Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) =>
        err ? reject(err) : resolve(res),
      );
    });
}
