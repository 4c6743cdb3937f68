/**
 * `services/inference/main.ts` as the launcher runs it: `models.<name>.bundleDir` is a folder of
 * versions (every signed version registered, the newest stable), and the broker's JWKS is
 * fetched over HTTPS trusting the mesh CA from the certs directory (or `--ca`), with no
 * `NODE_EXTRA_CA_CERTS` in the environment.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { GRPCInferenceServiceClient } from '../gen/inference/grpc_service.ts';
import { createTestPki, spiffeIdOf, type TestPki } from '../mesh/ca/index.ts';
import { writeBundleDir } from '../services/inference/bundle/bundle-files.ts';
import { generateSignerKey } from '../services/inference/bundle/signing.ts';
import { signedIrisFiles } from '../services/inference/bundle/testing.ts';
import { createTestIssuer, type TestIssuer } from '../services/policy/testing.ts';

let dir: string;
let pki: TestPki;
let other: TestPki;
let idp: TestIssuer;
let jwksServer: Server;
let jwksUrl: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulwark-inference-config-'));
  pki = await createTestPki({ dir: join(dir, 'certs'), services: ['inference', 'identity'] });
  other = await createTestPki({ dir: join(dir, 'other'), services: ['inference'] });
  idp = await createTestIssuer();
  // The broker's JWKS endpoint, with a certificate from the mesh CA.
  jwksServer = createServer(
    { cert: pki.services.identity!.certPem, key: pki.services.identity!.keyPem },
    (_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [idp.publicJwk] }));
    },
  );
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  jwksUrl = `https://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks`;
  // A folder of versions, as the launcher writes it.
  const signer = generateSignerKey();
  await writeFile(join(dir, 'signer.pub'), signer.publicKeyPem);
  for (const version of ['1', '2'])
    await writeBundleDir(
      join(dir, 'published', 'iris', version),
      signedIrisFiles(signer.privateKeyPem, { version }),
    );
  await writeFile(
    join(dir, 'bulwark.yaml'),
    [
      'version: 1',
      `stateDir: ${join(dir, 'state')}`,
      'services:',
      '  policy:',
      '    port: 1',
      '  audit:',
      '    port: 2',
      'models:',
      '  iris:',
      `    bundleDir: ${join(dir, 'published', 'iris')}`,
      '    riskTier: low',
      'inference:',
      '  quotas:',
      '    low: { ratePerSec: 7 }',
      '',
    ].join('\n'),
  );
}, 60_000);

afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  }
  await new Promise((r) => jwksServer?.close(r));
  await pki?.cleanup();
  await other?.cleanup();
  await rm(dir, { recursive: true, force: true });
});

/** Starts main.ts and resolves with its address and its output so far. */
async function start(extra: string[]): Promise<{ address: string; logs: () => string }> {
  const env: Record<string, string | undefined> = { ...process.env, OTEL_TRACES_EXPORTER: 'none' };
  delete env.NODE_EXTRA_CA_CERTS;
  const child = spawn(
    process.execPath,
    [
      'services/inference/main.ts',
      '--config',
      join(dir, 'bulwark.yaml'),
      '--certs',
      join(dir, 'certs'),
      '--port',
      '0',
      '--issuer',
      idp.issuer,
      '--jwks',
      jwksUrl,
      '--trust',
      join(dir, 'signer.pub'),
      '--model-dir',
      join(dir, `models-${children.length}`),
      '--no-metrics',
      ...extra,
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  let logs = '';
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready:\n${logs}`)), 50_000);
    const seen = (chunk: Buffer) => {
      logs += chunk.toString();
      const m = /"address":"([^"]+)"[^\n]*"msg":"inference service ready"/.exec(logs);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', seen);
    child.stderr!.on('data', seen);
    child.on('exit', (code) => reject(new Error(`exited ${code}:\n${logs}`)));
  });
  return { address, logs: () => logs };
}

async function metadataCall(address: string): Promise<grpc.ServiceError> {
  const client = new GRPCInferenceServiceClient(
    address,
    grpc.credentials.createSsl(Buffer.from(pki.caPem), null, null, {
      checkServerIdentity: (_h, peer) =>
        spiffeIdOf(peer) === pki.services.inference!.spiffeId ? undefined : new Error('wrong'),
    }),
    { 'grpc.ssl_target_name_override': 'localhost' },
  );
  const md = new grpc.Metadata();
  md.set(
    'authorization',
    `Bearer ${await idp.mint({ sub: 'acme/bob', org: 'acme', roles: ['analyst'] })}`,
  );
  try {
    return await new Promise<grpc.ServiceError>((resolve, reject) =>
      client.modelMetadata(
        { name: 'iris', version: '' },
        md,
        { deadline: Date.now() + 10_000 },
        (e) => (e ? resolve(e) : reject(new Error('answered without policy'))),
      ),
    );
  } finally {
    client.close();
  }
}

test('a folder of versions registers every version, the newest stable; quotas and JWKS trust from the configuration', async () => {
  const { address, logs } = await start([]);
  expect(logs()).toMatch(/"models":\["iris@2"\]/);
  // Quotas from bulwark.yaml, the keys left out at their defaults.
  expect(logs()).toMatch(/"quotas":\{"low":\{"ratePerSec":7,"burst":100,"dailyBudget":100000\}/);
  expect(logs()).toMatch(/"model":"iris","version":"1"[^\n]*"model registered"/);
  // The token was verified with keys fetched over HTTPS (the call got as far as policy,
  // which is absent): the mesh CA was trusted without NODE_EXTRA_CA_CERTS.
  const err = await metadataCall(address);
  expect({ code: err.code, details: err.details }).toEqual({
    code: grpc.status.UNAVAILABLE,
    details: 'policy service unavailable',
  });
  expect(logs()).not.toMatch(/DEP0123/);
}, 60_000);

test('--ca names the CA of the JWKS fetch: another CA means no keys and no caller', async () => {
  const { address } = await start(['--ca', other.caFile]);
  const err = await metadataCall(address);
  expect({ code: err.code, details: err.details }).toEqual({
    code: grpc.status.UNAUTHENTICATED,
    details: "the broker's signing keys are unavailable",
  });
}, 60_000);

test('--help documents the JWKS trust and the bundleDir forms', async () => {
  const child = spawn(process.execPath, ['services/inference/main.ts', '--help'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise((r) => child.on('exit', r));
  expect(code).toBe(0);
  expect(out).toMatch(/--ca <file> +CA trusted for the JWKS fetch/);
  expect(out).toMatch(/no NODE_EXTRA_CA_CERTS needed/);
  expect(out).toMatch(/folder of versions/);
});
