/**
 * Fault: the identity broker is killed with SIGKILL while a load generator calls ModelInfer
 * with tokens the broker issued.
 *
 * Inference verifies tokens against the broker's JWKS, which it fetched once and caches, so
 * tokens already issued keep working while they are valid: every call after the kill is
 * answered. New tokens cannot be had: a token request is refused at the socket, and the
 * `bulwark login` / `bulwark token` commands say the broker cannot be reached (exit code 4).
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { decodeJwt } from 'jose';
import type { GRPCInferenceServiceClient } from '../../gen/inference/grpc_service.ts';
import { createTlsFetch } from '../../identity/tls-fetch.ts';
import { REPO_ROOT, type ServiceProcess } from './support/child-service.ts';
import { createFaultMesh, type FaultMesh } from './support/fault-mesh.ts';
import { inferIris } from './support/iris-caller.ts';
import {
  startLoad,
  summary,
  type CallRecord,
  type LoadGenerator,
} from './support/load-generator.ts';

const OK = grpc.status.OK;
const CALLERS = 4;
const RESOURCE = 'urn:bulwark:inference';
/**
 * Calls per caller (one client, so one subject, each): under the per-subject burst quota (100)
 * and the extraction monitor's first judgement (100 queries), so only the fault can refuse.
 */
const CALLS_PER_CALLER = 90;

let mesh: FaultMesh;
let broker: ServiceProcess;
let issuer: string;
let client: GRPCInferenceServiceClient;
let load: LoadGenerator | undefined;
const clientSecret = (i: number) => `load-client-secret-${i}-${process.pid}`;

/** RFC 6749 client credentials with client_secret_basic, as a partner back-end asks. */
async function requestToken(i: number): Promise<string> {
  const res = await createTlsFetch({ ca: mesh.pki.caPem })(`${issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`acme-load-${i}:${clientSecret(i)}`).toString('base64')}`,
    },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      resource: RESOURCE,
      scope: 'model:infer',
    }),
  });
  const body = (await res.json()) as { access_token?: string };
  if (res.status !== 200 || !body.access_token) {
    throw new Error(`token request refused: ${res.status} ${JSON.stringify(body)}`);
  }
  return body.access_token;
}

/** Runs the `bulwark` command as a person would. */
function bulwark(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/bulwark.js', ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, BULWARK_CA_FILE: '', BULWARK_ISSUER: '', BULWARK_TOKEN_FILE: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  mesh = await createFaultMesh();
  const identity = mesh.pki.services.identity!;
  const secretFile = (name: string) => join(mesh.dir, `${name}.secret`);
  await writeFile(secretFile('acme-upstream'), 'acme-upstream-secret\n', { mode: 0o600 });
  for (let i = 0; i < CALLERS; i++) {
    await writeFile(secretFile(`acme-load-${i}`), `${clientSecret(i)}\n`, { mode: 0o600 });
  }
  ({ proc: broker, issuer } = await mesh.startBroker({
    host: '127.0.0.1',
    port: mesh.ports.identity,
    tls: { certFile: identity.certFile, keyFile: identity.keyFile, caFiles: [identity.caFile] },
    databasePath: join(mesh.dir, 'identity.sqlite'),
    organisations: [
      {
        id: 'acme',
        displayName: 'Acme Bank',
        // Never contacted: client credentials involve no upstream login.
        issuer: 'https://127.0.0.1:1',
        clientId: 'bulwark-broker',
        clientSecretFile: secretFile('acme-upstream'),
        emailDomains: ['acme.example'],
        roleMapping: [],
      },
    ],
    clients: Array.from({ length: CALLERS }, (_, i) => ({
      clientId: `acme-load-${i}`,
      org: 'acme',
      roles: ['analyst'],
      auth: 'client_secret_basic',
      clientSecretFile: secretFile(`acme-load-${i}`),
      grantTypes: ['client_credentials'],
      scopes: ['model:infer'],
    })),
  }));
  const tokens = { issuer, jwksUrl: `${issuer}/jwks` };
  await mesh.startAudit();
  await mesh.startPolicy(tokens);
  const { address } = await mesh.startInference(tokens);
  client = mesh.inferenceClient(address);
}, 150_000);

afterAll(async () => {
  await load?.stop();
  await mesh?.close();
});

test('broker killed under load: issued tokens keep working at inference, new tokens fail clearly', async () => {
  const tokens = await Promise.all(Array.from({ length: CALLERS }, (_, i) => requestToken(i)));
  const expiresAt = Math.min(...tokens.map((t) => decodeJwt(t).exp!)) * 1000;
  load = startLoad({
    callers: CALLERS,
    maxDurationMs: 45_000,
    maxCallsPerCaller: CALLS_PER_CALLER,
    minIntervalMs: 60,
    call: (caller, seq, id) => inferIris(client, tokens[caller]!, id, seq),
  });
  let killAt = 0;
  let records: readonly CallRecord[];
  try {
    // Every caller has been answered once: inference holds the broker's keys.
    await load.until(
      (r) => new Set(r.filter((c) => c.code === OK).map((c) => c.caller)).size === CALLERS,
      30_000,
    );
    killAt = performance.now();
    await broker.kill9();
    // The callers spend the rest of their budget with the broker gone.
    await load.until((r) => r.length === CALLERS * CALLS_PER_CALLER, 40_000);
  } finally {
    records = await load.stop();
  }
  const lastCall = Date.now();

  // The tokens were still valid for the whole run, and every call was answered: before the
  // kill and after it.
  expect(lastCall).toBeLessThan(expiresAt);
  const afterKill = records.filter((r) => r.start > killAt);
  expect(afterKill.length).toBeGreaterThanOrEqual(100);
  expect(records.filter((r) => r.code !== OK).map((r) => `${r.code} ${r.details}`)).toEqual([]);
  expect(records).toHaveLength(CALLERS * CALLS_PER_CALLER);

  // A new token cannot be had: the token endpoint refuses the connection.
  await expect(requestToken(0)).rejects.toMatchObject({ code: 'ECONNREFUSED' });

  // People get a clear message and the "unavailable" exit code, both for a new login and for
  // refreshing a stored session whose token ran out.
  const login = await bulwark([
    'login',
    '--org',
    'acme',
    '--issuer',
    issuer,
    '--ca',
    mesh.pki.caFile,
    '--token-file',
    join(mesh.dir, 'session.json'),
  ]);
  expect(login.code).toBe(4);
  expect(login.stderr).toContain(`cannot reach the identity broker at ${issuer}`);

  const sessionFile = join(mesh.dir, 'expired-session.json');
  const refreshToken = 'stored-refresh-token-value';
  await writeFile(
    sessionFile,
    JSON.stringify({
      issuer,
      clientId: 'bulwark-cli',
      org: 'acme',
      resource: RESOURCE,
      scope: 'model:infer',
      accessToken: 'expired-access-token-value',
      expiresAt: Math.floor(Date.now() / 1000) - 60,
      refreshToken,
    }),
    { mode: 0o600 },
  );
  const token = await bulwark(['token', '--ca', mesh.pki.caFile, '--token-file', sessionFile]);
  expect(token.code).toBe(4);
  expect(token.stderr).toContain(`cannot reach the identity broker at ${issuer}`);
  expect(token.stdout).toBe('');
  expect(token.stderr).not.toContain(refreshToken);

  process.stdout.write(
    `broker-kill: ${records.length} calls (${summary(records)}), ${afterKill.length} after the kill, ` +
      `tokens valid ${((expiresAt - lastCall) / 1000).toFixed(0)} s more\n`,
  );
}, 120_000);
