import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from '../identity/testing/harness.ts';

test('the demo IdP entry point starts, serves discovery and stops on SIGTERM', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-demo-idp-'));
  writeFileSync(join(dir, 'secret'), 'a-demo-client-secret-of-some-length\n');
  writeFileSync(join(dir, 'password'), 'demo-password\n');
  const child = spawn(
    process.execPath,
    [
      'identity/demo-idp/main.ts',
      '--org',
      'globex',
      '--client-secret-file',
      join(dir, 'secret'),
      '--password-file',
      join(dir, 'password'),
      '--redirect-uri',
      'https://localhost:8443/login/callback',
      '--service-client-id',
      'globex-backend',
      '--service-client-secret-file',
      join(dir, 'secret'),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      child.once('exit', (code) => reject(new Error(`exited ${code}`)));
    });
    const { org, issuer } = JSON.parse(line) as { org: string; issuer: string };
    expect(org).toBe('globex');
    const discovery = (await (
      await fetch(`${issuer}/.well-known/openid-configuration`)
    ).json()) as Record<string, unknown>;
    expect(discovery.issuer).toBe(issuer);
    expect(discovery.code_challenge_methods_supported).toEqual(['S256']);
    // The partner back-end service gets a JWT for the audience the broker trusts.
    const basic = Buffer.from('globex-backend:a-demo-client-secret-of-some-length').toString(
      'base64',
    );
    const res = await fetch(String(discovery.token_endpoint), {
      method: 'POST',
      headers: { authorization: `Basic ${basic}` },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        resource: 'urn:bulwark:identity',
      }),
    });
    const { access_token: token } = (await res.json()) as { access_token: string };
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as {
      aud: string;
      iss: string;
    };
    expect(claims).toMatchObject({ aud: 'urn:bulwark:identity', iss: issuer });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the demo IdP entry point refuses to start without a password', async () => {
  const child = spawn(
    process.execPath,
    [
      'identity/demo-idp/main.ts',
      '--org',
      'acme',
      '--client-secret-file',
      '/dev/null',
      '--redirect-uri',
      'https://x/cb',
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, BULWARK_DEMO_PASSWORD: '' },
    },
  );
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect(code).toBe(2);
  expect(err).toContain('BULWARK_DEMO_PASSWORD');
});

test('--issuer: the IdP names itself by its public URL while listening elsewhere', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-demo-idp-'));
  writeFileSync(join(dir, 'secret'), 'a-demo-client-secret-of-some-length\n');
  writeFileSync(join(dir, 'password'), 'demo-password\n');
  const port = await freePort();
  // As in docker compose: reached as https://acme:7451, listening on another address.
  const issuer = `http://acme.bulwark.test:${port}`;
  const child = spawn(
    process.execPath,
    [
      'identity/demo-idp/main.ts',
      '--org',
      'acme',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--issuer',
      issuer,
      '--client-secret-file',
      join(dir, 'secret'),
      '--password-file',
      join(dir, 'password'),
      '--redirect-uri',
      'https://localhost:8443/login/callback',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      child.once('exit', (code) => reject(new Error(`exited ${code}`)));
    });
    expect(JSON.parse(line)).toEqual({ org: 'acme', issuer });
    const discovery = (await (
      await fetch(`http://127.0.0.1:${port}/.well-known/openid-configuration`)
    ).json()) as Record<string, unknown>;
    expect(discovery.issuer).toBe(issuer);
    // Endpoints follow the Host the client used; the issuer (and so `iss`) is the public URL.
    expect(discovery.token_endpoint).toBe(`http://127.0.0.1:${port}/token`);
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--issuer refuses a value that is not an http(s) URL', async () => {
  const child = spawn(
    process.execPath,
    [
      'identity/demo-idp/main.ts',
      '--org',
      'acme',
      '--issuer',
      'javascript:alert(1)',
      '--client-secret-file',
      '/dev/null',
      '--redirect-uri',
      'https://x/cb',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, BULWARK_DEMO_PASSWORD: 'pw' } },
  );
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect(code).toBe(2);
  expect(err).toContain('--issuer must be an http(s) URL');
});
