import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import type { AccountStore } from './account-store.ts';
import type { Auditor } from './auditor.ts';
import { IdentityError } from './errors.ts';
import { sendHtml } from './html.ts';
import { errorPage, upstreamRefusedPage } from './login-pages.ts';
import type { OrganisationConfig } from './options.ts';
import { emailDomain, mapRoles } from './role-mapping.ts';
import type { Upstream, UpstreamTransaction } from './upstream.ts';

const UPSTREAM_COOKIE = '__Host-bulwark_upstream';

interface PendingLogin extends UpstreamTransaction {
  uid: string;
  org: string;
  loginHint?: string;
  [key: string]: unknown;
}

export interface LoginRoutesDeps {
  provider: () => Provider;
  organisations: readonly OrganisationConfig[];
  upstream: Upstream;
  accounts: AccountStore;
  auditor: Auditor;
  /** Storage for in-flight upstream logins (the `oidc-provider` adapter, model `UpstreamLogin`). */
  pending: {
    upsert(id: string, payload: PendingLogin, expiresIn: number): Promise<void>;
    find(id: string): Promise<PendingLogin | undefined>;
    destroy(id: string): Promise<void>;
  };
  issuer: string;
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

/**
 * The upstream half of a login: the redirect to the partner IdP (state, nonce and PKCE kept
 * server-side and bound to the browser by a cookie), the callback, ID token validation, the
 * cross-organisation check and the claim mapping.
 */
export function createUpstreamLogin(deps: LoginRoutesDeps) {
  const byId = new Map(deps.organisations.map((o) => [o.id, o]));
  const byDomain = new Map(
    deps.organisations.flatMap((o) => o.emailDomains.map((d) => [d.toLowerCase(), o] as const)),
  );
  const source = (req: IncomingMessage) => req.socket.remoteAddress;

  function page(res: ServerResponse, status: number, title: string, what: string, next: string) {
    sendHtml(res, status, errorPage(title, what, next));
  }

  async function refuse(
    req: IncomingMessage,
    res: ServerResponse,
    reason: string,
    description: string,
    actor: { org?: string; sub?: string; clientId?: string },
  ) {
    await deps.auditor.record({
      action: 'login',
      outcome: 'failure',
      reason,
      actor: { ...actor, sourceAddress: source(req) },
    });
    await deps.provider().interactionFinished(req, res, {
      error: 'access_denied',
      error_description: description,
    });
  }

  async function startUpstream(
    req: IncomingMessage,
    res: ServerResponse,
    uid: string,
    org: OrganisationConfig,
    clientId: string,
    loginHint?: string,
  ) {
    const hintDomain = emailDomain(loginHint);
    const owner = hintDomain ? byDomain.get(hintDomain) : undefined;
    if (owner && owner.id !== org.id) {
      await refuse(
        req,
        res,
        'email domain belongs to another organisation',
        `this email address belongs to ${owner.displayName}`,
        {
          org: org.id,
          clientId,
        },
      );
      return;
    }
    let begun;
    try {
      begun = await deps.upstream.begin(org, loginHint);
    } catch (err) {
      await deps.auditor.record({
        action: 'login',
        outcome: 'failure',
        reason: 'upstream unavailable',
        actor: { org: org.id, clientId, sourceAddress: source(req) },
      });
      const what =
        err instanceof IdentityError ? err.message : 'the identity provider did not answer';
      page(
        res,
        502,
        'Your organisation cannot be reached',
        `${what}.`,
        "Try again in a few minutes. If it keeps failing, contact your organisation's IT support.",
      );
      return;
    }
    const { transaction } = begun;
    await deps.pending.upsert(
      transaction.state,
      { ...transaction, uid, org: org.id, loginHint },
      600,
    );
    res.writeHead(303, {
      location: begun.url.href,
      'set-cookie': `${UPSTREAM_COOKIE}=${transaction.state}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600`,
      'cache-control': 'no-store',
    });
    res.end();
  }

  /** `/login/callback`: find the interaction by state, then continue under its cookie path. */
  async function callbackHop(req: IncomingMessage, res: ServerResponse, url: URL) {
    const state = url.searchParams.get('state') ?? '';
    const pending = state ? await deps.pending.find(state) : undefined;
    if (!pending || cookie(req, UPSTREAM_COOKIE) !== state) {
      await deps.auditor.record({
        action: 'login',
        outcome: 'failure',
        reason: 'state mismatch',
        actor: { org: pending?.org, sourceAddress: source(req) },
      });
      page(
        res,
        400,
        'Sign-in could not be completed',
        'The answer from your organisation does not belong to a sign-in started in this browser (state mismatch).',
        'Start the sign-in again from the application.',
      );
      return;
    }
    res.writeHead(303, {
      location: `/login/${encodeURIComponent(pending.uid)}/callback${url.search}`,
      'cache-control': 'no-store',
    });
    res.end();
  }

  async function callback(req: IncomingMessage, res: ServerResponse, uid: string, url: URL) {
    const state = url.searchParams.get('state') ?? '';
    const pending = state ? await deps.pending.find(state) : undefined;
    if (!pending || pending.uid !== uid || cookie(req, UPSTREAM_COOKIE) !== state) {
      await deps.auditor.record({
        action: 'login',
        outcome: 'failure',
        reason: 'state mismatch',
        actor: { sourceAddress: source(req) },
      });
      page(
        res,
        400,
        'Sign-in could not be completed',
        'The answer from your organisation does not match this sign-in (state mismatch).',
        'Start the sign-in again from the application.',
      );
      return;
    }
    // One use only: a replayed callback finds nothing.
    await deps.pending.destroy(state);
    const details = await deps.provider().interactionDetails(req, res);
    const clientId = String(details.params.client_id ?? '');
    const org = byId.get(pending.org)!;
    let claims: Record<string, unknown>;
    try {
      const callbackUrl = new URL(`${deps.issuer}/login/callback${url.search}`);
      claims = await deps.upstream.finish(org, callbackUrl, pending);
    } catch (err) {
      const code = err instanceof IdentityError ? err.code : 'ERR_IDENTITY_UPSTREAM_UNAVAILABLE';
      if (code === 'ERR_IDENTITY_UPSTREAM_REFUSED') {
        await deps.auditor.record({
          action: 'login',
          outcome: 'failure',
          reason: 'upstream refused',
          actor: { org: org.id, clientId, sourceAddress: source(req) },
        });
        // Say so here, then let the person hand the refusal back to the application.
        sendHtml(res, 403, upstreamRefusedPage(uid, org.displayName));
        return;
      }
      await deps.auditor.record({
        action: 'login',
        outcome: 'failure',
        reason:
          code === 'ERR_IDENTITY_ID_TOKEN_INVALID'
            ? 'upstream ID token invalid'
            : 'upstream unavailable',
        actor: { org: org.id, clientId, sourceAddress: source(req) },
      });
      if (code === 'ERR_IDENTITY_ID_TOKEN_INVALID') {
        page(
          res,
          401,
          'Sign-in could not be verified',
          `The answer from ${org.displayName} failed validation (issuer, audience, nonce, signature or expiry).`,
          'Start the sign-in again. If it keeps failing, contact your administrator.',
        );
      } else {
        page(
          res,
          502,
          'Your organisation cannot be reached',
          `The identity provider of ${org.displayName} did not answer in time.`,
          'Try again in a few minutes.',
        );
      }
      return;
    }
    const upstreamSub = String(claims.sub);
    const accountId = `${org.id}/${upstreamSub}`;
    const domain = emailDomain(claims.email);
    const owner = domain ? byDomain.get(domain) : undefined;
    if (domain && org.emailDomains.length > 0 && owner?.id !== org.id) {
      await refuse(
        req,
        res,
        'email domain belongs to another organisation',
        owner
          ? `this account's email address belongs to ${owner.displayName}`
          : `this account's email domain is not one of ${org.displayName}'s`,
        { org: org.id, sub: accountId, clientId },
      );
      return;
    }
    const roles = mapRoles(claims, org.roleMapping, org.defaultRoles);
    await deps.accounts.upsert({
      accountId,
      org: org.id,
      email: typeof claims.email === 'string' ? claims.email : undefined,
      name: typeof claims.name === 'string' ? claims.name : undefined,
      roles,
    });
    await deps.auditor.record({
      action: 'login',
      outcome: 'success',
      actor: { org: org.id, sub: accountId, clientId, sourceAddress: source(req) },
    });
    res.setHeader(
      'set-cookie',
      `${UPSTREAM_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0`,
    );
    await deps
      .provider()
      .interactionFinished(
        req,
        res,
        { login: { accountId, amr: ['fed'] } },
        { mergeWithLastSubmission: false },
      );
  }

  return { page, refuse, startUpstream, callbackHop, callback };
}
