import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { postForm } from '../identity/testing/clients.ts';
import { DEMO_PASSWORD, startHarness, type Harness } from '../identity/testing/harness.ts';

let h: Harness;
/** The web console's redirect target: a loopback page that records what the broker sent back. */
let app: Server;
let WEB_REDIRECT: string;
const landings: URL[] = [];
let browser: Browser;
let context: BrowserContext;

beforeAll(async () => {
  app = createServer((req, res) => {
    const url = new URL(req.url ?? '/', WEB_REDIRECT);
    if (url.pathname === '/callback') landings.push(url);
    res.writeHead(200, { 'content-type': 'text/html' }).end('<title>back in the app</title>');
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  WEB_REDIRECT = `http://127.0.0.1:${(app.address() as AddressInfo).port}/callback`;
  h = await startHarness({ webRedirect: WEB_REDIRECT });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-gpu',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  // The test CA is not in Chromium's trust store; everything else about TLS is real.
  context = await browser.newContext({ ignoreHTTPSErrors: true });
});
afterAll(async () => {
  await context?.close();
  await browser?.close();
  await h.close();
  app.close();
});

/** Opens the web console's authorization request and resolves with where the broker sends the browser back. */
async function signIn(
  page: Page,
  extra: Record<string, string>,
  act: (page: Page) => Promise<void>,
) {
  const verifier = randomBytes(32).toString('base64url');
  const url = new URL(`${h.broker.issuer}/auth`);
  const params = {
    client_id: 'web-console',
    response_type: 'code',
    redirect_uri: WEB_REDIRECT,
    scope: 'openid model:infer',
    resource: 'urn:bulwark:inference',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    state: randomBytes(8).toString('hex'),
    ...extra,
  };
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  const before = landings.length;
  await page.goto(url.href);
  await act(page);
  await page.waitForURL((u) => u.href.startsWith(WEB_REDIRECT));
  expect(landings.length).toBe(before + 1);
  return { landed: landings.at(-1)!, verifier };
}

test('an acme user signs in through the broker and acme IdP and gets a mapped mesh token', async () => {
  const page = await context.newPage();
  const { landed, verifier } = await signIn(page, {}, async (p) => {
    await p.getByLabel('Work email').fill('alice@acme.example');
    await p.getByRole('button', { name: 'Continue with email' }).click();
    await p.getByLabel('User name').fill('alice');
    await p.getByLabel('Password').fill(DEMO_PASSWORD);
    await p.getByRole('button', { name: 'Sign in' }).click();
  });
  const code = landed.searchParams.get('code');
  expect(code).toBeTruthy();
  const { status, body } = await postForm(h.fetch, `${h.broker.issuer}/token`, {
    grant_type: 'authorization_code',
    client_id: 'web-console',
    code: code!,
    code_verifier: verifier,
    redirect_uri: WEB_REDIRECT,
  });
  expect(status).toBe(200);
  const jwks = createLocalJWKSet(
    (await (await h.fetch(`${h.broker.issuer}/jwks`)).json()) as { keys: never[] },
  );
  const { payload, protectedHeader } = await jwtVerify(String(body.access_token), jwks, {
    issuer: h.broker.issuer,
    audience: 'urn:bulwark:inference',
  });
  expect(protectedHeader).toMatchObject({ typ: 'at+jwt', alg: 'ES256' });
  expect(payload).toMatchObject({
    sub: 'acme/u-1001',
    org: 'acme',
    roles: ['member', 'model-user'],
    scope: 'model:infer',
  });
  await page.close();
});

test('the same user, already signed in, cannot get a token for globex', async () => {
  const page = await context.newPage();
  const { landed } = await signIn(
    page,
    { org: 'globex', login_hint: 'alice@acme.example' },
    async () => undefined,
  );
  expect(landed.searchParams.get('error')).toBe('access_denied');
  expect(landed.searchParams.get('code')).toBeNull();
  await page.close();
});

test('an unknown organisation shows a clear, accessible error page', async () => {
  const page = await context.newPage();
  await page.goto(
    `${h.broker.issuer}/auth?${new URLSearchParams({
      client_id: 'web-console',
      response_type: 'code',
      redirect_uri: WEB_REDIRECT,
      scope: 'openid model:infer',
      resource: 'urn:bulwark:inference',
      code_challenge: 'x'.repeat(43),
      code_challenge_method: 'S256',
      org: 'umbrella',
    })}`,
  );
  await expect(
    page.getByRole('heading', { name: 'Unknown organisation' }).isVisible(),
  ).resolves.toBe(true);
  await expect(page.getByRole('alert').textContent()).resolves.toContain(
    'organisation Bulwark does not know',
  );
  await page.close();
});
