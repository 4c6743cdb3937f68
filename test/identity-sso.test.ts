import { createServer, type Server } from 'node:net';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { postForm } from '../identity/testing/clients.ts';
import { startHarness, WEB_REDIRECT, freePort, type Harness } from '../identity/testing/harness.ts';
import { createHttpAgent, parseForm } from '../identity/testing/http-agent.ts';
import { startRogueIdp } from '../identity/testing/rogue-idp.ts';
import { authorize, demoIdpLogin, redirectParams } from '../identity/testing/sso.ts';

let h: Harness;
let rogue: Awaited<ReturnType<typeof startRogueIdp>>;
let silent: Server;

beforeAll(async () => {
  h = await startHarness({
    extraOrganisations: async (ca) => {
      rogue = await startRogueIdp(await ca.server());
      // Accepts connections and never answers: a hung IdP.
      silent = createServer(() => undefined);
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      const common = {
        clientId: 'bulwark-broker',
        clientSecret: 'not-used-by-these-idps',
        roleMapping: [],
      };
      return [
        {
          ...common,
          id: 'rogue',
          displayName: 'Rogue Ltd',
          issuer: rogue.issuer,
          emailDomains: ['rogue.example'],
        },
        {
          ...common,
          id: 'initech',
          displayName: 'Initech',
          issuer: `https://127.0.0.1:${await freePort()}`,
          emailDomains: ['initech.example'],
        },
        {
          ...common,
          id: 'hooli',
          displayName: 'Hooli',
          issuer: `https://127.0.0.1:${(silent.address() as { port: number }).port}`,
          emailDomains: ['hooli.example'],
        },
      ];
    },
  });
});
afterAll(async () => {
  await h.close();
  await rogue.close();
  silent.close();
});
afterEach(() => {
  h.clock.now = Date.now();
  for (const k of Object.keys(rogue.mode)) delete rogue.mode[k as keyof typeof rogue.mode];
});

const agent = () => createHttpAgent({ ca: h.ca.cert });

async function redeem(code: string, verifier: string) {
  return postForm(h.fetch, `${h.broker.issuer}/token`, {
    grant_type: 'authorization_code',
    client_id: 'web-console',
    code,
    code_verifier: verifier,
    redirect_uri: WEB_REDIRECT,
  });
}

async function loginAs(username: string, extra: Record<string, string> = {}) {
  const a = agent();
  const { page, verifier } = await authorize(a, h.broker.issuer, {
    login_hint: `${username}@acme.example`,
    ...extra,
  });
  const done = await demoIdpLogin(a, page, username);
  return { a, params: redirectParams(done), verifier };
}

async function brokerJwks() {
  return createLocalJWKSet(
    (await (await h.fetch(`${h.broker.issuer}/jwks`)).json()) as { keys: never[] },
  );
}

test('login page offers organisations and an email field, accessibly', async () => {
  const { page } = await authorize(agent(), h.broker.issuer);
  expect(page.status).toBe(200);
  expect(page.body).toContain('<html lang="en">');
  expect(page.body).toContain('<label for="email">');
  expect(page.body).toContain('<label for="org">');
  expect(page.body).toContain('Acme Corp');
  expect(page.body).toContain('Globex');
});

test('email on the login page finds the organisation, and the mapped token comes back', async () => {
  const a = agent();
  const { page, verifier } = await authorize(a, h.broker.issuer);
  const form = /action="([^"]+)"/.exec(page.body)![1]!;
  const idpPage = await a.post(
    new URL(form, h.broker.issuer),
    { email: 'alice@acme.example' },
    (u) => u.href.startsWith(WEB_REDIRECT),
  );
  expect(idpPage.url.origin).toBe(h.acme.issuer);
  const done = await demoIdpLogin(a, idpPage, 'alice');
  const code = redirectParams(done).get('code');
  expect(code).toBeTruthy();
  const { status, body } = await redeem(code!, verifier);
  expect(status).toBe(200);
  const { payload } = await jwtVerify(String(body.access_token), await brokerJwks(), {
    issuer: h.broker.issuer,
    audience: 'urn:bulwark:inference',
    typ: 'at+jwt',
  });
  expect(payload).toMatchObject({
    sub: 'acme/u-1001',
    org: 'acme',
    client_id: 'web-console',
    scope: 'model:infer',
  });
  expect(payload.roles).toEqual(['member', 'model-user']);
  expect(
    h.audit.events.some(
      (e) => e.action === 'login' && e.outcome === 'success' && e.actor.sub === 'acme/u-1001',
    ),
  ).toBe(true);
});

test('org parameter skips the picker', async () => {
  const { page } = await authorize(agent(), h.broker.issuer, { org: 'globex' });
  expect(page.url.origin).toBe(h.globex.issuer);
});

test('login_hint skips the picker (home-realm discovery)', async () => {
  const { page } = await authorize(agent(), h.broker.issuer, {
    login_hint: 'carol@globex.example',
  });
  expect(page.url.origin).toBe(h.globex.issuer);
});

test('refused: unknown organisation → clear page', async () => {
  const { page } = await authorize(agent(), h.broker.issuer, { org: 'umbrella' });
  expect(page.status).toBe(400);
  expect(page.body).toContain('Unknown organisation');
  expect(h.audit.events.at(-1)).toMatchObject({
    action: 'login',
    outcome: 'failure',
    reason: 'unknown organisation',
  });
});

test('refused: email domain nobody owns → picker with an error', async () => {
  const a = agent();
  const { page } = await authorize(a, h.broker.issuer);
  const form = /action="([^"]+)"/.exec(page.body)![1]!;
  const again = await a.post(new URL(form, h.broker.issuer), { email: 'eve@nowhere.example' });
  expect(again.status).toBe(400);
  expect(again.body).toContain('No organisation uses that email domain');
});

test('refused: a user whose email domain belongs to another organisation → access_denied', async () => {
  const { params } = await loginAs('mallory', { login_hint: '', org: 'acme' });
  expect(params.get('error')).toBe('access_denied');
  expect(params.get('code')).toBeNull();
  expect(
    h.audit.events.some(
      (e) => e.reason === 'email domain belongs to another organisation' && e.actor.org === 'acme',
    ),
  ).toBe(true);
});

test('refused: an acme email asking for globex → access_denied before any upstream call', async () => {
  const a = agent();
  const { page } = await authorize(a, h.broker.issuer, {
    org: 'globex',
    login_hint: 'alice@acme.example',
  });
  expect(redirectParams(page).get('error')).toBe('access_denied');
});

test('refused: replayed authorization code → invalid_grant', async () => {
  const { params, verifier } = await loginAs('alice');
  const code = params.get('code')!;
  expect((await redeem(code, verifier)).status).toBe(200);
  const replay = await redeem(code, verifier);
  expect(replay.status).toBe(400);
  expect(replay.body.error).toBe('invalid_grant');
});

test('refused: PKCE verifier mismatch → invalid_grant', async () => {
  const { params } = await loginAs('alice');
  const res = await redeem(params.get('code')!, 'x'.repeat(43));
  expect(res.body.error).toBe('invalid_grant');
});

test('refused: authorization request without PKCE', async () => {
  const a = agent();
  const url = new URL(`${h.broker.issuer}/auth`);
  for (const [k, v] of Object.entries({
    client_id: 'web-console',
    response_type: 'code',
    redirect_uri: WEB_REDIRECT,
    scope: 'openid model:infer',
    resource: 'urn:bulwark:inference',
  }))
    url.searchParams.set(k, v);
  const page = await a.get(url, (u) => u.href.startsWith(WEB_REDIRECT));
  expect(redirectParams(page).get('error')).toBe('invalid_request');
});

test('refused: unknown scope at the authorization endpoint → clear page', async () => {
  const { page } = await authorize(agent(), h.broker.issuer, { scope: 'openid model:everything' });
  expect(page.status).toBe(400);
  expect(page.body).toContain('invalid_scope');
});

test('refused: unknown resource at the authorization endpoint → invalid_target', async () => {
  const { page } = await authorize(agent(), h.broker.issuer, { resource: 'urn:bulwark:elsewhere' });
  expect(redirectParams(page).get('error')).toBe('invalid_target');
});

test('refresh tokens rotate: the new one works, the old one is refused', async () => {
  const { params, verifier } = await loginAs('bob');
  const first = await redeem(params.get('code')!, verifier);
  const refresh1 = String(first.body.refresh_token);
  expect(refresh1).toBeTruthy();
  const second = await postForm(h.fetch, `${h.broker.issuer}/token`, {
    grant_type: 'refresh_token',
    client_id: 'web-console',
    refresh_token: refresh1,
  });
  expect(second.status).toBe(200);
  expect(second.body.refresh_token).toBeTruthy();
  expect(second.body.refresh_token).not.toBe(refresh1);
  const { payload } = await jwtVerify(String(second.body.access_token), await brokerJwks(), {
    audience: 'urn:bulwark:inference',
  });
  expect(payload).toMatchObject({ sub: 'acme/u-1002', org: 'acme', roles: ['analyst', 'member'] });
  const reuse = await postForm(h.fetch, `${h.broker.issuer}/token`, {
    grant_type: 'refresh_token',
    client_id: 'web-console',
    refresh_token: refresh1,
  });
  expect(reuse.body.error).toBe('invalid_grant');
  // Reuse of a rotated refresh token means it leaked: the whole grant is revoked.
  const afterReuse = await postForm(h.fetch, `${h.broker.issuer}/token`, {
    grant_type: 'refresh_token',
    client_id: 'web-console',
    refresh_token: String(second.body.refresh_token),
  });
  expect(afterReuse.body.error).toBe('invalid_grant');
});

test('introspection reports a refresh token active; after revocation it is inactive and refused', async () => {
  const { params, verifier } = await loginAs('alice');
  const { body } = await redeem(params.get('code')!, verifier);
  const refresh = String(body.refresh_token);
  const introspect = async () =>
    (
      await postForm(h.fetch, `${h.broker.issuer}/token/introspection`, {
        client_id: 'web-console',
        token: refresh,
      })
    ).body;
  expect(await introspect()).toMatchObject({
    active: true,
    client_id: 'web-console',
    sub: 'acme/u-1001',
  });
  const revoked = await h.fetch(`${h.broker.issuer}/token/revocation`, {
    method: 'POST',
    body: new URLSearchParams({ client_id: 'web-console', token: refresh }),
  });
  expect(revoked.status).toBe(200);
  expect((await introspect()).active).toBe(false);
  const again = await postForm(h.fetch, `${h.broker.issuer}/token`, {
    grant_type: 'refresh_token',
    client_id: 'web-console',
    refresh_token: refresh,
  });
  expect(again.body.error).toBe('invalid_grant');
});

test('refused: upstream IdP down → clear page', async () => {
  const { page } = await authorize(agent(), h.broker.issuer, { org: 'initech' });
  expect(page.status).toBe(502);
  expect(page.body).toContain('Initech');
  expect(page.body).toContain('Try again');
});

test('refused: upstream IdP hangs → timeout and a clear page', async () => {
  const started = Date.now();
  const { page } = await authorize(agent(), h.broker.issuer, { org: 'hooli' });
  expect(page.status).toBe(502);
  expect(page.body).toContain('Hooli');
  expect(Date.now() - started).toBeLessThan(15_000);
});

test('refused: upstream token endpoint too slow → clear page', async () => {
  rogue.mode.delayMs = 3000;
  const { page } = await authorize(agent(), h.broker.issuer, { org: 'rogue' });
  expect(page.status).toBe(502);
  expect(page.body).toContain('did not answer in time');
});

test('refused: the upstream IdP refuses → clear page, then access_denied back to the client', async () => {
  rogue.mode.refuse = true;
  const a = agent();
  const { page } = await authorize(a, h.broker.issuer, { org: 'rogue' });
  expect(page.status).toBe(403);
  expect(page.body).toContain('Rogue Ltd refused the sign-in');
  expect(h.audit.events.at(-1)).toMatchObject({
    action: 'login',
    outcome: 'failure',
    reason: 'upstream refused',
  });
  const form = parseForm(page);
  const back = await a.post(form.action, form.fields, (u) => u.href.startsWith(WEB_REDIRECT));
  expect(redirectParams(back).get('error')).toBe('access_denied');
});

test('refused: callback with a state this browser never sent', async () => {
  const a = agent();
  const res = await a.get(`${h.broker.issuer}/login/callback?code=abc&state=forged`);
  expect(res.status).toBe(400);
  expect(res.body).toContain('state mismatch');
});

test('refused: upstream answers with a different state', async () => {
  rogue.mode.state = 'tampered';
  const { page } = await authorize(agent(), h.broker.issuer, { org: 'rogue' });
  expect(page.status).toBe(400);
  expect(page.body).toContain('state mismatch');
});

test('refused: a callback replayed in another browser (no matching cookie)', async () => {
  const a = agent();
  const { page } = await authorize(a, h.broker.issuer, { org: 'acme' });
  const callback = await demoIdpLogin(a, page, 'alice', (u) => u.pathname === '/login/callback');
  expect(callback.location?.pathname).toBe('/login/callback');
  const other = agent();
  const res = await other.get(callback.location!);
  expect(res.status).toBe(400);
  expect(res.body).toContain('state mismatch');
});

test.each([
  ['issuer', { issuer: 'https://evil.example' }],
  ['audience', { audience: 'some-other-client' }],
  ['nonce', { nonce: 'replayed-nonce' }],
  ['expiry', { expiresIn: -600 }],
])('refused: ID token with the wrong %s → clear page', async (_what, mode) => {
  Object.assign(rogue.mode, mode);
  const { page } = await authorize(agent(), h.broker.issuer, { org: 'rogue' });
  expect(page.status).toBe(401);
  expect(page.body).toContain('failed validation');
  expect(h.audit.events.at(-1)).toMatchObject({
    action: 'login',
    outcome: 'failure',
    reason: 'upstream ID token invalid',
  });
});

test('refused: a real ID token that expired before the callback was processed (broker clock)', async () => {
  const a = agent();
  const { page } = await authorize(a, h.broker.issuer, { org: 'acme' });
  const callback = await demoIdpLogin(a, page, 'alice', (u) => u.pathname === '/login/callback');
  h.clock.now = Date.now() + 10 * 60_000;
  const res = await a.follow(callback);
  expect(res.status).toBe(401);
  expect(res.body).toContain('failed validation');
});

test('nothing secret in audit records', () => {
  const all = JSON.stringify(h.audit.events);
  expect(all).not.toMatch(/eyJ[\w-]+\.[\w-]+\./);
  expect(all).not.toContain('not-used-by-these-idps');
});
