import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { postForm } from '../../identity/testing/clients.ts';
import { createTlsFetch } from '../../identity/tls-fetch.ts';
import { readSpanFile } from '../../mesh/telemetry/index.ts';
import { creditFeatures } from '../../services/inference/demo/datasets.ts';
import { approveDeviceLogin } from './support/device-approval.ts';
import { runBulwark, startUp, until, type UpMesh } from './support/up-process.ts';

// A person of acme signs in through the broker in Chromium (the device flow's verification
// page, as `bulwark login` sends people to it), and a partner program in another process calls
// ModelInfer on iris with the token: the right class, an audit receipt that `bulwark audit
// proof` proves against a signed checkpoint, and one trace from the broker to audit.

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const INFER_PROCESS = join(import.meta.dirname, 'support', 'infer-process.ts');

let mesh: UpMesh;
let browser: Browser;
let context: BrowserContext;
let ca: string;
let issuer: string;
let password: string;
let brokerFetch: typeof fetch;

beforeAll(async () => {
  [mesh, browser] = await Promise.all([
    startUp(),
    chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    }),
  ]);
  // The mesh CA is not in Chromium's trust store; everything else about TLS is real.
  context = await browser.newContext({ ignoreHTTPSErrors: true });
  ca = readFileSync(join(mesh.stateDir, 'certs', 'ca.crt'), 'utf8');
  issuer = `https://127.0.0.1:${mesh.base}`;
  password = readFileSync(join(mesh.stateDir, 'secrets', 'demo-password'), 'utf8').trim();
  brokerFetch = createTlsFetch({ ca });
}, 90_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  if (mesh) expect(await mesh.stop()).toBe(0);
});

/** Starts a device login at the broker, as `bulwark login --org <org>` does. */
async function startDeviceLogin(org: string, headers: Record<string, string> = {}) {
  const { status: code, body } = await postForm(
    brokerFetch,
    `${issuer}/device/auth`,
    {
      client_id: 'bulwark-cli',
      scope: 'openid model:infer',
      resource: 'urn:bulwark:inference',
      org,
    },
    headers,
  );
  expect(code).toBe(200);
  return body as { device_code: string; user_code: string; verification_uri_complete: string };
}

/** Polls the token endpoint until the person has approved the device. */
async function deviceToken(deviceCode: string, headers: Record<string, string> = {}) {
  let token = '';
  await until(
    'the device token',
    async () => {
      const { status: code, body } = await postForm(
        brokerFetch,
        `${issuer}/token`,
        { grant_type: DEVICE_GRANT, client_id: 'bulwark-cli', device_code: deviceCode },
        headers,
      );
      if (code === 200) token = String(body.access_token);
      else expect(body.error).toBe('authorization_pending');
      return code === 200;
    },
    20_000,
  );
  return token;
}

/** Plays the person in Chromium: confirm the device, sign in at the partner IdP. */
async function approveInBrowser(page: Page, userCode: string, username: string): Promise<string[]> {
  const seen: string[] = [];
  const steps = {
    code: page.getByLabel('Device code'),
    allow: page.getByRole('button', { name: 'Allow' }),
    email: page.getByLabel('Work email'),
    user: page.getByLabel('User name'),
    done: page.getByRole('heading', { name: 'Device connected' }),
  };
  const anyStep = Object.values(steps).reduce((a, b) => a.or(b));
  for (let i = 0; i < 8; i++) {
    await anyStep.first().waitFor({ timeout: 20_000 });
    if (await steps.done.isVisible()) return [...seen, 'done'];
    if (await steps.allow.isVisible()) {
      seen.push('allow');
      await steps.allow.click();
      await steps.allow.waitFor({ state: 'detached', timeout: 20_000 });
    } else if (await steps.user.isVisible()) {
      seen.push('idp');
      await steps.user.fill(username);
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await steps.user.waitFor({ state: 'detached', timeout: 20_000 });
    } else if (await steps.code.isVisible()) {
      seen.push('code');
      await steps.code.fill(userCode);
      await page.getByRole('button', { name: 'Continue', exact: true }).click();
      await steps.code.waitFor({ state: 'detached', timeout: 20_000 });
    } else if (await steps.email.isVisible()) {
      seen.push('email');
      await steps.email.fill(`${username}@acme.example`);
      await page.getByRole('button', { name: 'Continue with email' }).click();
      await steps.email.waitFor({ state: 'detached', timeout: 20_000 });
    } else {
      throw new Error(`unexpected page at ${new URL(page.url()).pathname}`);
    }
  }
  throw new Error(`the login did not finish: ${seen.join(' → ')}`);
}

/** Runs the generated ts-proto client in another process. */
async function inferInAnotherProcess(
  token: string,
  model: string,
  row: number[],
  traceparent?: string,
) {
  const child = spawn(process.execPath, [INFER_PROCESS], {
    env: {
      ...process.env,
      INFER_ADDRESS: `127.0.0.1:${mesh.base + 3}`,
      INFER_CA_FILE: join(mesh.stateDir, 'certs', 'ca.crt'),
      INFER_TOKEN: token,
      INFER_MODEL: model,
      INFER_ROW: JSON.stringify(row),
      ...(traceparent ? { INFER_TRACEPARENT: traceparent } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`infer process exited ${code}: ${err}`);
  return JSON.parse(out) as {
    ok: boolean;
    code?: number;
    label?: number[];
    parameters?: Record<string, unknown>;
  };
}

const auditDb = () => join(mesh.stateDir, 'audit.sqlite');

test('an acme person logs in in Chromium; another process infers on iris; receipt proven; one trace', async () => {
  // The test starts the trace: the broker's requests and the inference call continue it.
  const traceId = randomBytes(16).toString('hex');
  const traceparent = `00-${traceId}-${randomBytes(8).toString('hex')}-01`;
  const start = await startDeviceLogin('acme', { traceparent });
  const page = await context.newPage();
  await page.goto(start.verification_uri_complete);
  const steps = await approveInBrowser(page, start.user_code, 'alice');
  expect(steps).toContain('idp'); // really signed in at acme's own IdP
  await page.close();
  const token = await deviceToken(start.device_code, { traceparent });
  const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<
    string,
    unknown
  >;
  // Claims mapped as bulwark.yaml says: acme's ml-engineers are credit officers.
  expect(claims).toMatchObject({
    sub: 'acme/u-1001',
    org: 'acme',
    roles: ['credit-officer'],
    aud: 'urn:bulwark:inference',
    client_id: 'bulwark-cli',
  });

  const res = await inferInAnotherProcess(token, 'iris', [5.1, 3.5, 1.4, 0.2], traceparent);
  expect(res).toMatchObject({ ok: true, label: [0] }); // Iris setosa
  const leaf = Number(res.parameters?.['bulwark.audit.leaf_index']);
  expect(Number.isSafeInteger(leaf)).toBe(true);
  expect(res.parameters?.['bulwark.audit.log_id']).toBe('bulwark.local/audit');

  // The receipt leads to an inclusion proof against a signed checkpoint.
  let proof: { verified?: boolean; checkpoint?: string; record?: Record<string, unknown> } = {};
  await until(
    'a checkpoint covering the inference record',
    async () => {
      const run = runBulwark(['audit', 'proof', String(leaf), '--sqlite', auditDb()]);
      if ((await run.exited) !== 0) return false;
      proof = JSON.parse(run.out()) as typeof proof;
      return true;
    },
    20_000,
  );
  expect(proof.verified).toBe(true);
  expect(proof.checkpoint).toContain('bulwark.local/audit');
  expect(proof.record).toMatchObject({ traceId, actor: { sub: 'acme/u-1001', org: 'acme' } });
  // And the whole log re-hashes to its signed checkpoints.
  const verify = runBulwark(['audit', 'verify', '--sqlite', auditDb()]);
  expect(await verify.exited).toBe(0);

  // One trace: the broker's HTTP spans, inference, policy and audit.
  await until(
    'identity, inference, policy and audit spans of the test trace',
    () => {
      const services = new Set(
        readSpanFile(mesh.traceFile)
          .filter((s) => s.traceId === traceId)
          .map((s) => s.service),
      );
      return ['identity', 'inference', 'policy', 'audit'].every((s) => services.has(s));
    },
    20_000,
  );
  // The broker's own records of this login reach the audit log, carrying the same trace.
  await until(
    "the broker's records of the login in the audit log",
    async () => {
      const run = runBulwark(['audit', 'tail', '-n', '200', '--sqlite', auditDb()]);
      await run.exited;
      const records = run
        .out()
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { record: Record<string, unknown> }).record);
      const mine = records.filter((r) => r.service === 'identity' && r.traceId === traceId);
      return ['device.authorize', 'token.issue'].every((a) => mine.some((r) => r.action === a));
    },
    15_000,
  );
  // Each service exports its spans in batches, so the broker's may land in the file a little
  // after the answer: wait for them rather than read once.
  const traceSpans = () => readSpanFile(mesh.traceFile).filter((s) => s.traceId === traceId);
  const brokerSpans = () =>
    traceSpans()
      .filter((s) => s.service === 'identity')
      .map((s) => s.name);
  await until(
    "the broker's spans in the trace file",
    async () => ['POST /device/auth', 'POST /token'].every((n) => brokerSpans().includes(n)),
    15_000,
  );
  const spans = traceSpans();
  const broker = brokerSpans();
  expect(broker).toEqual(expect.arrayContaining(['POST /device/auth', 'POST /token']));
  // Audit served appends within this trace (inference's record, and the broker's above).
  expect(
    spans.some((s) => s.service === 'audit' && s.name === 'bulwark.audit.v1.AuditService/Append'),
  ).toBe(true);
  // No token, code or password in any span of the mesh.
  const text = readFileSync(mesh.traceFile, 'utf8');
  expect(text).not.toContain(token);
  expect(text).not.toContain(start.device_code);
  expect(text).not.toContain(password);
}, 90_000);

test('a globex person is refused the acme-only credit model (PERMISSION_DENIED), audited', async () => {
  const start = await startDeviceLogin('globex');
  await approveDeviceLogin({
    ca,
    verificationUri: start.verification_uri_complete,
    userCode: start.user_code,
    email: 'dave@globex.example',
    password,
  });
  const token = await deviceToken(start.device_code);
  const row = creditFeatures.map((f) => (f.min + f.max) / 2);
  const res = await inferInAnotherProcess(token, 'credit', row);
  expect(res).toMatchObject({ ok: false, code: status.PERMISSION_DENIED });
  await until(
    'the refusal in the audit log',
    async () => {
      const run = runBulwark(['audit', 'tail', '-n', '30', '--sqlite', auditDb()]);
      await run.exited;
      return run
        .out()
        .split('\n')
        .some((l) => l.includes('globex/g-2002') && l.includes('credit') && /denied/i.test(l));
    },
    15_000,
  );
}, 60_000);
