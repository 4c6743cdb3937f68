/**
 * Identity broker benchmark.
 *
 * 1. Token issuance over HTTPS against a real broker in its own process (`identity/main.ts`,
 *    SQLite storage, ES256): client credentials (`private_key_jwt`) and RFC 8693 token exchange
 *    (a real partner token from the acme demo IdP), closed loop with CONCURRENCY requests in
 *    flight; issuances/s and p50/p99 as the caller sees them.
 * 2. Verification of a mesh access token with a cached JWKS (jose, in process): verifications/s
 *    on one core and p50/p99.
 *
 * Knobs: BENCH_SECONDS (per issuance measurement, default 5), BENCH_CONCURRENCY (default 16),
 * BENCH_VERIFY_MS (default 2000).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, sign, verify as verifySignature } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { clientAssertion, postForm } from '../identity/testing/clients.ts';
import { ACME_EXCHANGE_AUDIENCE, startHarness, type Harness } from '../identity/testing/harness.ts';
import { TOKEN_EXCHANGE_GRANT } from '../identity/index.ts';
import type { BenchReport } from './run.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const VERIFY_MS = Number(process.env.BENCH_VERIFY_MS ?? 2000);

interface Measured {
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  count: number;
  errors: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function closedLoop(op: () => Promise<boolean>): Promise<Measured> {
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        if (await op()) latencies.push(performance.now() - t);
        else errors += 1;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    perSecond: latencies.length / elapsed,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    count: latencies.length,
    errors,
  };
}

async function partnerToken(h: Harness): Promise<string> {
  const basic = Buffer.from(`acme-backend:${h.secrets.acmeBackend}`).toString('base64');
  const { body } = await postForm(
    h.fetch,
    `${h.acme.issuer}/token`,
    { grant_type: 'client_credentials', resource: ACME_EXCHANGE_AUDIENCE },
    { authorization: `Basic ${basic}` },
  );
  return String(body.access_token);
}

/** Starts the broker as its own process, configured like the harness's in-process one. */
async function startBrokerProcess(
  h: Harness,
  dir: string,
): Promise<{ issuer: string; child: ChildProcess }> {
  const server = await h.ca.server('identity');
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text, { mode: 0o600 });
    return join(dir, name);
  };
  const options = {
    port: 0,
    tls: { certFile: file('cert.pem', server.cert), keyFile: file('key.pem', server.key) },
    databasePath: join(dir, 'identity.db'),
    upstream: { caFiles: [file('ca.pem', h.ca.cert)] },
    keyCheckIntervalMs: 0,
    organisations: [
      {
        id: 'acme',
        displayName: 'Acme',
        issuer: h.acme.issuer,
        clientId: 'bulwark-broker',
        clientSecretFile: file('acme-secret', 'unused'),
        emailDomains: ['acme.example'],
        roleMapping: [],
        trustedIssuers: [{ issuer: h.acme.issuer, audience: ACME_EXCHANGE_AUDIENCE }],
      },
    ],
    clients: [
      {
        clientId: 'acme-gateway',
        org: 'acme',
        auth: 'private_key_jwt',
        jwks: {
          keys: [
            {
              ...createPublicKey(h.gatewayKey).export({ format: 'jwk' }),
              alg: 'ES256',
              kid: 'gw-1',
            },
          ],
        },
        grantTypes: ['client_credentials', TOKEN_EXCHANGE_GRANT],
        scopes: ['model:infer'],
      },
    ],
  };
  const main = fileURLToPath(new URL('../identity/main.ts', import.meta.url));
  const child = spawn(
    process.execPath,
    [main, '--options-file', file('identity.json', JSON.stringify(options))],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`broker exited with ${code}`)));
  });
  return { issuer: (JSON.parse(line) as { issuer: string }).issuer, child };
}

export async function run(): Promise<BenchReport> {
  const h = await startHarness();
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-bench-identity-'));
  const broker = await startBrokerProcess(h, dir);
  try {
    const issuer = broker.issuer;
    const tokenUrl = `${issuer}/token`;
    const assertion = () => clientAssertion('acme-gateway', h.gatewayKey, issuer);
    const clientCredentials = await closedLoop(async () => {
      const { status } = await postForm(h.fetch, tokenUrl, {
        grant_type: 'client_credentials',
        client_id: 'acme-gateway',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await assertion(),
        resource: 'urn:bulwark:inference',
      });
      return status === 200;
    });
    const subject = await partnerToken(h);
    const exchange = await closedLoop(async () => {
      const { status } = await postForm(h.fetch, tokenUrl, {
        grant_type: TOKEN_EXCHANGE_GRANT,
        client_id: 'acme-gateway',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await assertion(),
        subject_token: subject,
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        resource: 'urn:bulwark:inference',
      });
      return status === 200;
    });

    const { body } = await postForm(h.fetch, tokenUrl, {
      grant_type: 'client_credentials',
      client_id: 'acme-gateway',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: await assertion(),
      resource: 'urn:bulwark:inference',
    });
    const token = String(body.access_token);
    const jwks = createLocalJWKSet(
      (await (await h.fetch(`${issuer}/jwks`)).json()) as { keys: never[] },
    );
    const verifyOptions = {
      issuer,
      audience: 'urn:bulwark:inference',
      typ: 'at+jwt',
      algorithms: ['ES256'],
    };
    const lat: number[] = [];
    const vEnd = performance.now() + VERIFY_MS;
    const vStart = performance.now();
    while (performance.now() < vEnd) {
      const t = performance.now();
      await jwtVerify(token, jwks, verifyOptions);
      lat.push(performance.now() - t);
    }
    const vElapsed = (performance.now() - vStart) / 1000;
    lat.sort((a, b) => a - b);
    const verify = {
      perSecond: lat.length / vElapsed,
      p50Ms: percentile(lat, 50),
      p99Ms: percentile(lat, 99),
      count: lat.length,
      errors: 0,
    };

    // The machine's ceiling for the same signature check, for reading the numbers above.
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const signed = Buffer.from(token.split('.').slice(0, 2).join('.'));
    const sig = sign('sha256', signed, { key: ec.privateKey, dsaEncoding: 'ieee-p1363' });
    let raw = 0;
    const rEnd = performance.now() + 500;
    while (performance.now() < rEnd) {
      verifySignature('sha256', signed, { key: ec.publicKey, dsaEncoding: 'ieee-p1363' }, sig);
      raw += 1;
    }
    const rawPerSecond = raw / 0.5;

    const row = (name: string, m: Measured) =>
      `${name.padEnd(34)} ${m.perSecond.toFixed(0).padStart(8)}/s  p50 ${m.p50Ms.toFixed(2)} ms  p99 ${m.p99Ms.toFixed(2)} ms  (${m.count} ok, ${m.errors} errors)`;
    const text = [
      `issuance: broker in its own process, ${SECONDS}s closed loop, ${CONCURRENCY} in flight, HTTPS keep-alive, SQLite, ES256`,
      row('client credentials (private_key_jwt)', clientCredentials),
      row('token exchange (RFC 8693)', exchange),
      `verification: one core, cached JWKS, jose jwtVerify, ${VERIFY_MS} ms`,
      row('verify mesh access token', verify),
      `${'raw ECDSA P-256 verify (node:crypto)'.padEnd(34)} ${rawPerSecond.toFixed(0).padStart(8)}/s  (this machine's ceiling)`,
      'targets: >= 1,000 issuances/s; >= 50,000 verifications/s per core',
    ].join('\n');
    return {
      title: 'identity broker: token issuance and verification',
      text,
      data: {
        seconds: SECONDS,
        concurrency: CONCURRENCY,
        clientCredentials,
        exchange,
        verify,
        rawPerSecond,
      },
    };
  } finally {
    broker.child.kill('SIGTERM');
    await new Promise((resolve) => broker.child.once('exit', resolve));
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
