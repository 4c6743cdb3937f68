import type { IncomingMessage, ServerResponse } from 'node:http';
import { readForm, sendHtml } from './html.ts';
import { chooseOrganisationPage } from './login-pages.ts';
import type { OrganisationConfig } from './options.ts';
import { emailDomain } from './role-mapping.ts';
import { createUpstreamLogin, type LoginRoutesDeps } from './login-upstream.ts';

export type { LoginRoutesDeps } from './login-upstream.ts';

/**
 * The broker's own login pages (`/login/...`): organisation choice, the redirect to the
 * partner IdP, the callback, and the automatic consent for the mesh's first-party clients.
 */
export function createLoginRoutes(deps: LoginRoutesDeps) {
  const byId = new Map(deps.organisations.map((o) => [o.id, o]));
  const byDomain = new Map(
    deps.organisations.flatMap((o) => o.emailDomains.map((d) => [d.toLowerCase(), o] as const)),
  );
  const source = (req: IncomingMessage) => req.socket.remoteAddress;
  const { page, startUpstream, callbackHop, callback } = createUpstreamLogin(deps);

  async function consent(req: IncomingMessage, res: ServerResponse) {
    const provider = deps.provider();
    const details = await provider.interactionDetails(req, res);
    const { Grant } = provider;
    const existing = details.grantId ? await Grant.find(details.grantId) : undefined;
    const grant =
      existing ??
      new Grant({ accountId: details.session?.accountId, clientId: details.params.client_id });
    const missing = details.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(
      req,
      res,
      { consent: { grantId } },
      { mergeWithLastSubmission: true },
    );
  }

  async function show(req: IncomingMessage, res: ServerResponse, uid: string) {
    const details = await deps.provider().interactionDetails(req, res);
    if (details.uid !== uid) throw new Error('interaction mismatch');
    if (details.prompt.name !== 'login') {
      await consent(req, res);
      return;
    }
    const clientId = String(details.params.client_id ?? '');
    const loginHint =
      typeof details.params.login_hint === 'string' ? details.params.login_hint : undefined;
    const orgParam = typeof details.params.org === 'string' ? details.params.org : undefined;
    if (orgParam !== undefined) {
      const org = byId.get(orgParam);
      if (!org) {
        await deps.auditor.record({
          action: 'login',
          outcome: 'failure',
          reason: 'unknown organisation',
          actor: { clientId, sourceAddress: source(req) },
        });
        page(
          res,
          400,
          'Unknown organisation',
          'The sign-in link names an organisation Bulwark does not know.',
          'Check the link, or start again and choose your organisation from the list.',
        );
        return;
      }
      await startUpstream(req, res, uid, org, clientId, loginHint);
      return;
    }
    const hinted = byDomain.get(emailDomain(loginHint) ?? '');
    if (hinted) {
      await startUpstream(req, res, uid, hinted, clientId, loginHint);
      return;
    }
    sendHtml(res, 200, chooseOrganisationPage(uid, deps.organisations));
  }

  async function submit(req: IncomingMessage, res: ServerResponse, uid: string) {
    const details = await deps.provider().interactionDetails(req, res);
    if (details.uid !== uid || details.prompt.name !== 'login')
      throw new Error('interaction mismatch');
    const clientId = String(details.params.client_id ?? '');
    const form = await readForm(req);
    const email = form.get('email')?.trim();
    const orgId = form.get('org');
    let org: OrganisationConfig | undefined;
    if (email) {
      org = byDomain.get(emailDomain(email) ?? '');
      if (!org) {
        sendHtml(
          res,
          400,
          chooseOrganisationPage(
            uid,
            deps.organisations,
            'No organisation uses that email domain. Choose your organisation from the list.',
          ),
        );
        return;
      }
    } else if (orgId) {
      org = byId.get(orgId);
      if (!org) {
        sendHtml(
          res,
          400,
          chooseOrganisationPage(
            uid,
            deps.organisations,
            'Unknown organisation. Choose one from the list.',
          ),
        );
        return;
      }
    } else {
      sendHtml(
        res,
        400,
        chooseOrganisationPage(
          uid,
          deps.organisations,
          'Type your email or choose your organisation.',
        ),
      );
      return;
    }
    await startUpstream(req, res, uid, org, clientId, email || undefined);
  }

  /** Handles `/login/...`; returns false for other paths. */
  return async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
  ): Promise<boolean> {
    if (url.pathname === '/organisations' && req.method === 'GET') {
      // Public: the same names the login page shows; lets the CLI check `--org` up front.
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60' });
      res.end(
        JSON.stringify(deps.organisations.map((o) => ({ id: o.id, displayName: o.displayName }))),
      );
      return true;
    }
    const parts = url.pathname.split('/').filter(Boolean);
    if (parts[0] !== 'login') return false;
    try {
      if (parts.length === 2 && parts[1] === 'callback' && req.method === 'GET') {
        await callbackHop(req, res, url);
      } else if (parts.length === 2 && req.method === 'GET') {
        await show(req, res, parts[1]!);
      } else if (parts.length === 2 && req.method === 'POST') {
        await submit(req, res, parts[1]!);
      } else if (parts.length === 3 && parts[2] === 'callback' && req.method === 'GET') {
        await callback(req, res, parts[1]!, url);
      } else if (parts.length === 3 && parts[2] === 'abort' && req.method === 'POST') {
        await deps.provider().interactionFinished(req, res, {
          error: 'access_denied',
          error_description: 'the sign-in was refused',
        });
      } else {
        page(
          res,
          404,
          'Page not found',
          'There is no such sign-in page.',
          'Start the sign-in again from the application.',
        );
      }
    } catch (err) {
      deps.auditor.log(err, 'login page failed');
      if (!res.headersSent) {
        page(
          res,
          400,
          'Sign-in expired',
          'This sign-in is no longer valid: it expired, was already used, or cookies are blocked.',
          'Start the sign-in again from the application.',
        );
      }
    }
    return true;
  };
}
