import { createHash, randomBytes } from 'node:crypto';
import type { AgentPage, createHttpAgent } from './http-agent.ts';
import { DEMO_PASSWORD, WEB_REDIRECT } from './harness.ts';
import { parseForm } from './http-agent.ts';

type Agent = ReturnType<typeof createHttpAgent>;

export const atRedirect = (u: URL) => u.href.startsWith(WEB_REDIRECT);

/** Starts an authorization code + PKCE request of `web-console` at the broker. */
export async function authorize(agent: Agent, issuer: string, extra: Record<string, string> = {}) {
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(8).toString('hex');
  const url = new URL(`${issuer}/auth`);
  const params: Record<string, string> = {
    client_id: 'web-console',
    response_type: 'code',
    redirect_uri: WEB_REDIRECT,
    scope: 'openid model:infer',
    resource: 'urn:bulwark:inference',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    state,
    ...extra,
  };
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  const page = await agent.get(url, atRedirect);
  return { page, verifier, state };
}

/** Fills the demo IdP's login form. */
export async function demoIdpLogin(
  agent: Agent,
  page: AgentPage,
  username: string,
  stop = atRedirect,
) {
  const form = parseForm(page);
  return agent.post(form.action, { username, password: DEMO_PASSWORD }, stop);
}

/** The `code` (or `error`) the broker sent back to the web console. */
export function redirectParams(page: AgentPage): URLSearchParams {
  if (!page.location || !atRedirect(page.location)) {
    throw new Error(`expected a redirect to the client, got ${page.status} at ${page.url.href}`);
  }
  return page.location.searchParams;
}
