import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createTestCa } from '../identity/testing/tls.ts';
import { createTlsFetch } from '../identity/tls-fetch.ts';

test('the broker entry point starts from an options file, serves discovery, stops on SIGTERM', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-identity-main-'));
  const ca = await createTestCa();
  const server = await ca.server('identity');
  writeFileSync(join(dir, 'cert.pem'), server.cert);
  writeFileSync(join(dir, 'key.pem'), server.key, { mode: 0o600 });
  writeFileSync(join(dir, 'acme-secret'), 'acme-client-secret\n', { mode: 0o600 });
  writeFileSync(
    join(dir, 'identity.json'),
    JSON.stringify({
      host: '127.0.0.1',
      port: 0,
      metricsPort: 0,
      tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') },
      databasePath: join(dir, 'identity.db'),
      organisations: [
        {
          id: 'acme',
          displayName: 'Acme',
          issuer: 'https://127.0.0.1:1',
          clientId: 'bulwark-broker',
          clientSecretFile: join(dir, 'acme-secret'),
          emailDomains: ['acme.example'],
          roleMapping: [],
        },
      ],
      clients: [
        {
          clientId: 'bulwark-cli',
          auth: 'none',
          grantTypes: ['urn:ietf:params:oauth:grant-type:device_code'],
        },
      ],
    }),
  );
  const child = spawn(
    process.execPath,
    ['identity/main.ts', '--options-file', join(dir, 'identity.json')],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
    });
    const { issuer, metrics } = JSON.parse(line) as { issuer: string; metrics: string };
    const res = await createTlsFetch({ ca: ca.cert })(`${issuer}/organisations`);
    expect(await res.json()).toEqual([{ id: 'acme', displayName: 'Acme' }]);
    // A request for an unknown resource is refused and counted.
    await createTlsFetch({ ca: ca.cert })(`${issuer}/device/auth`, {
      method: 'POST',
      body: new URLSearchParams({ client_id: 'bulwark-cli', resource: 'urn:bulwark:nowhere' }),
    });
    const text = await (await fetch(metrics)).text();
    expect(text).toMatch(
      /bulwark_identity_events_total\{[^}]*action="token.refuse",outcome="failure"[^}]*\} 1/,
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).not.toContain('acme-client-secret');
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the broker entry point names a missing file and exits 1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-identity-main-'));
  writeFileSync(
    join(dir, 'identity.json'),
    JSON.stringify({
      tls: { certFile: join(dir, 'missing.pem'), keyFile: 'x' },
      databasePath: ':memory:',
      organisations: [],
      clients: [],
    }),
  );
  const child = spawn(
    process.execPath,
    ['identity/main.ts', '--options-file', join(dir, 'identity.json')],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  rmSync(dir, { recursive: true, force: true });
  expect(code).toBe(1);
  expect(stderr).toContain('tls.certFile: cannot read');
});

test('the broker entry point refuses an audit target it cannot reach over mTLS', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-identity-main-'));
  const ca = await createTestCa();
  const server = await ca.server('identity');
  writeFileSync(join(dir, 'cert.pem'), server.cert);
  writeFileSync(join(dir, 'key.pem'), server.key, { mode: 0o600 });
  writeFileSync(
    join(dir, 'identity.json'),
    JSON.stringify({
      tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') },
      databasePath: join(dir, 'identity.db'),
      organisations: [],
      clients: [],
      // No tls.caFiles: the broker could not check the audit service's certificate.
      audit: { address: '127.0.0.1:1', spiffeId: 'spiffe://bulwark.local/svc/audit' },
    }),
  );
  const child = spawn(
    process.execPath,
    ['identity/main.ts', '--options-file', join(dir, 'identity.json')],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  rmSync(dir, { recursive: true, force: true });
  expect(code).toBe(1);
  expect(stderr).toContain('audit needs tls.caFiles[0]');
});
