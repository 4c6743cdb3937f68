import { mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { main } from '../cli/main.ts';
import { startHarness, type Harness } from '../identity/testing/harness.ts';
import { approveDevice } from '../identity/testing/device.ts';

let h: Harness;
let dir: string;
let caFile: string;

beforeAll(async () => {
  h = await startHarness();
  dir = mkdtempSync(join(tmpdir(), 'bulwark-cli-'));
  caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, h.ca.cert);
});
afterAll(async () => {
  await h.close();
  rmSync(dir, { recursive: true, force: true });
});

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t) },
    out,
    err,
  };
}

test('bulwark login --org acme: prints URL and code, waits, stores the session 0600; bulwark token prints it', async () => {
  const tokenFile = join(dir, 'session.json');
  const c = capture();
  const run = main(
    [
      'node',
      'bulwark',
      'login',
      '--org',
      'acme',
      '--issuer',
      h.broker.issuer,
      '--ca',
      caFile,
      '--token-file',
      tokenFile,
      '--poll-interval',
      '0.2',
    ],
    c.io,
  );
  let printed = '';
  for (let i = 0; i < 400 && !printed.includes('code:'); i++) {
    await new Promise((r) => setTimeout(r, 50));
    printed = c.out.join('');
  }
  const url = /Open (\S+)/.exec(printed)![1]!;
  const code = /code: (\S+)/.exec(printed)![1]!;
  await approveDevice(h, url, code, 'confirm');
  expect(await run).toBe(0);
  expect(c.err.join('')).toContain('waiting for approval');
  expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
  const stored = JSON.parse(readFileSync(tokenFile, 'utf8')) as {
    accessToken: string;
    refreshToken: string;
  };
  expect(decodeJwt(stored.accessToken)).toMatchObject({
    sub: 'acme/u-1001',
    org: 'acme',
    aud: 'urn:bulwark:inference',
  });

  const t = capture();
  expect(
    await main(['node', 'bulwark', 'token', '--token-file', tokenFile, '--ca', caFile], t.io),
  ).toBe(0);
  expect(t.out.join('').trim()).toBe(stored.accessToken);

  // An expiring token is refreshed (and the refresh token rotated) before it is printed.
  writeFileSync(tokenFile, JSON.stringify({ ...stored, expiresAt: 0 }), { mode: 0o600 });
  const r = capture();
  expect(
    await main(['node', 'bulwark', 'token', '--token-file', tokenFile, '--ca', caFile], r.io),
  ).toBe(0);
  const refreshed = JSON.parse(readFileSync(tokenFile, 'utf8')) as {
    accessToken: string;
    refreshToken: string;
  };
  expect(r.out.join('').trim()).toBe(refreshed.accessToken);
  expect(refreshed.accessToken).not.toBe(stored.accessToken);
  expect(refreshed.refreshToken).not.toBe(stored.refreshToken);
  expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
});

test('bulwark login for an unknown organisation fails at once with the known ones (exit 2)', async () => {
  const c = capture();
  const code = await main(
    [
      'node',
      'bulwark',
      'login',
      '--org',
      'umbrella',
      '--issuer',
      h.broker.issuer,
      '--ca',
      caFile,
      '--token-file',
      join(dir, 'x.json'),
    ],
    c.io,
  );
  expect(code).toBe(2);
  expect(c.err.join('')).toContain('unknown organisation "umbrella"; known: acme, globex');
});

test('bulwark login that the person denies exits 1', async () => {
  const c = capture();
  const run = main(
    [
      'node',
      'bulwark',
      'login',
      '--org',
      'acme',
      '--issuer',
      h.broker.issuer,
      '--ca',
      caFile,
      '--token-file',
      join(dir, 'z.json'),
      '--poll-interval',
      '0.2',
    ],
    c.io,
  );
  let printed = '';
  for (let i = 0; i < 400 && !printed.includes('code:'); i++) {
    await new Promise((r) => setTimeout(r, 50));
    printed = c.out.join('');
  }
  await approveDevice(
    h,
    /Open (\S+)/.exec(printed)![1]!,
    /code: (\S+)/.exec(printed)![1]!,
    'abort',
  );
  expect(await run).toBe(1);
  expect(c.err.join('')).toContain('the login was denied');
});

test('bulwark token without a session says to log in (exit 4)', async () => {
  const c = capture();
  expect(
    await main(['node', 'bulwark', 'token', '--token-file', join(dir, 'none.json')], c.io),
  ).toBe(4);
  expect(c.err.join('')).toContain('bulwark login');
});

test('bulwark login against an unreachable broker exits 4', async () => {
  const c = capture();
  const code = await main(
    [
      'node',
      'bulwark',
      'login',
      '--org',
      'acme',
      '--issuer',
      'https://127.0.0.1:1',
      '--token-file',
      join(dir, 'y.json'),
    ],
    c.io,
  );
  expect(code).toBe(4);
  expect(c.err.join('')).toContain('cannot reach the identity broker');
});
