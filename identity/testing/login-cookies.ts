import { createHash, createHmac, randomBytes } from 'node:crypto';
import { WEB_REDIRECT } from './harness.ts';

/** An authorization request stopped at the broker's login page: its path and the cookies set. */
export interface StartedSignIn {
  /** `/login/<uid>`: the broker's own login page for this request. */
  loginPath: string;
  /** Every cookie the broker set (`name=value; ...`), signatures (`*.sig`) included. */
  cookie: string;
  /** The cookies as set, by name. */
  cookies: Map<string, string>;
}

/**
 * Starts an authorization code + PKCE request of `web-console` at one broker (replica) and
 * stops at the redirect to its login page, so a test can hand the cookies to another one.
 *
 * @example
 * ```ts
 * const started = await startSignIn(fetchFn, a.url);
 * const page = await showLoginPage(fetchFn, b.url, started.loginPath, started.cookie);
 * ```
 */
export async function startSignIn(
  fetchFn: typeof fetch,
  baseUrl: string,
  redirectUri = WEB_REDIRECT,
): Promise<StartedSignIn> {
  const url = new URL(`${baseUrl}/auth`);
  const verifier = randomBytes(32).toString('base64url');
  const params = {
    client_id: 'web-console',
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: 'openid model:infer',
    resource: 'urn:bulwark:inference',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    state: randomBytes(8).toString('hex'),
  };
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  const res = await fetchFn(url);
  await res.arrayBuffer();
  const location = res.headers.get('location');
  if (res.status !== 303 || !location) {
    throw new Error(`expected a redirect to the login page, got ${res.status}`);
  }
  const cookies = new Map<string, string>();
  for (const line of res.headers.getSetCookie()) {
    const pair = line.split(';')[0] ?? '';
    const eq = pair.indexOf('=');
    cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
  return { loginPath: new URL(location, baseUrl).pathname, cookie: cookieHeader(cookies), cookies };
}

/** `name=value; ...` for a Cookie header. */
export function cookieHeader(cookies: Map<string, string>): string {
  return [...cookies].map(([name, value]) => `${name}=${value}`).join('; ');
}

/** Loads a broker's login page with the given Cookie header (no redirects followed). */
export async function showLoginPage(
  fetchFn: typeof fetch,
  baseUrl: string,
  loginPath: string,
  cookie: string,
): Promise<{ status: number; body: string }> {
  const res = await fetchFn(`${baseUrl}${loginPath}`, { headers: { cookie } });
  return { status: res.status, body: await res.text() };
}

/**
 * A cookie and its signature (`<name>.sig`) as the broker's cookie layer computes them
 * (keygrip: HMAC-SHA1, base64url) with `key`: what someone holding a key would send.
 */
export function signedCookie(name: string, value: string, key: string): Map<string, string> {
  const sig = createHmac('sha1', key).update(`${name}=${value}`).digest('base64url');
  return new Map([
    [name, value],
    [`${name}.sig`, sig],
  ]);
}
