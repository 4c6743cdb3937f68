/**
 * Identity broker benchmark.
 *
 * 1. Token issuance over HTTPS against a real broker in its own process (`identity/main.ts`,
 *    SQLite storage, ES256): client credentials with `private_key_jwt` and with
 *    `tls_client_auth` (mTLS), and RFC 8693 token exchange with a real partner token from the
 *    acme demo IdP: the same one again and again (the broker's verified-subject cache answers)
 *    and a new one on every request (`exchange-fresh`: a signature check each). Closed loop with CONCURRENCY requests in flight over keep-alive connections;
 *    the load generator is kept cheap (client assertions signed before the clock starts,
 *    request bodies pre-built, a bare `node:https` client) so that the broker is what is
 *    measured. Reported: issuances/s and p50/p99 as the caller sees them, and the broker's
 *    own CPU time per issuance (from `/proc/<pid>/stat`), whose inverse is its capacity per
 *    core.
 * 2. Verification of mesh access tokens with a cached JWKS, in process, on one core (CPU time
 *    measured with `process.cpuUsage`, which counts the libuv thread pool too):
 *    - jose `jwtVerify` (WebCrypto): the reference;
 *    - first-seen tokens through `createJwtVerifier` (mesh/tokens): a signature check each;
 *    - repeat tokens through the verified-token cache: a pool of distinct tokens, each reused;
 *    - raw ECDSA P-256 verify in `node:crypto`: the machine's ceiling for a signature check.
 *
 * Knobs: BENCH_SECONDS (per issuance measurement, default 5), BENCH_CONCURRENCY (default 16),
 * BENCH_VERIFY_MS (per verification measurement, default 2000), BENCH_TOKEN_POOL (distinct
 * tokens for the repeat measurement, default 1000), BENCH_WARMUP_MS (unmeasured load before each
 * issuance phase, default 1000), BENCH_ISSUANCE (a comma-separated subset of the issuance
 * phases), BENCH_BROKER_PROFILE (a directory: the broker runs with `--cpu-prof` and writes its
 * profile there on exit).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  createPublicKey,
  randomUUID,
  sign,
  verify as verifySignature,
  type KeyObject,
} from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createLocalJWKSet, jwtVerify, type JWK } from 'jose';
import { postForm } from '../identity/testing/clients.ts';
import {
  ACME_EXCHANGE_AUDIENCE,
  PARTNER_SAN,
  startHarness,
  type Harness,
} from '../identity/testing/harness.ts';
import { TOKEN_EXCHANGE_GRANT } from '../identity/index.ts';
import { createJwtVerifier } from '../mesh/tokens/index.ts';
import { createTokenVerifier } from '../services/policy/token-verifier.ts';
import type { BenchReport } from './run.ts';
import { processCpuSeconds } from './support/cpu.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const VERIFY_MS = Number(process.env.BENCH_VERIFY_MS ?? 2000);
const TOKEN_POOL = Number(process.env.BENCH_TOKEN_POOL ?? 1000);
const PROFILE_DIR = process.env.BENCH_BROKER_PROFILE;
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 1000);
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const ISSUANCE_PHASES = [
  'client-credentials',
  'client-credentials-mtls',
  'exchange',
  'exchange-mtls',
  'exchange-fresh',
] as const;
type IssuancePhase = (typeof ISSUANCE_PHASES)[number];
/** BENCH_ISSUANCE: a comma-separated subset of the phases above (default all). */
const SELECTED = (process.env.BENCH_ISSUANCE ?? ISSUANCE_PHASES.join(',')).split(',');
const PHASE_NAMES: Record<IssuancePhase, string> = {
  'client-credentials': 'client credentials (private_key_jwt)',
  'client-credentials-mtls': 'client credentials (tls_client_auth)',
  exchange: 'token exchange (private_key_jwt)',
  'exchange-mtls': 'token exchange (tls_client_auth)',
  'exchange-fresh': 'token exchange, new subject each',
};

interface Measured {
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  count: number;
  errors: number;
}

interface IssuanceMeasured extends Measured {
  /** Broker CPU time (user + system) per issuance, milliseconds. */
  brokerCpuMsPerOp: number;
  /** 1000 / brokerCpuMsPerOp: what one broker core could issue. */
  brokerPerCore: number;
  /** Load generator CPU time per issuance, milliseconds. */
  loadCpuMsPerOp: number;
}

interface VerifyMeasured extends Measured {
  /** CPU time per verification (all threads of this process), microseconds. */
  cpuUsPerOp: number;
  /** 1e6 / cpuUsPerOp: verifications per second on one core. */
  perCore: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** CPU time (user + system) a process has used so far, milliseconds; 0 when not readable. */
function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    return processCpuSeconds(pid) * 1000;
  } catch {
    return 0;
  }
}

const ownCpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

async function closedLoop(
  op: () => Promise<boolean>,
  brokerPid: number | undefined,
): Promise<IssuanceMeasured> {
  // Warm up first (JIT, connections, caches), so that each phase measures a steady state.
  const warm = performance.now() + WARMUP_MS;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < warm) await op();
    }),
  );
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + SECONDS * 1000;
  const started = performance.now();
  const broker0 = processCpuMs(brokerPid);
  const own0 = ownCpuMs();
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
  const brokerCpu = processCpuMs(brokerPid) - broker0;
  const ownCpu = ownCpuMs() - own0;
  latencies.sort((a, b) => a - b);
  const ops = Math.max(1, latencies.length);
  return {
    perSecond: latencies.length / elapsed,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    count: latencies.length,
    errors,
    brokerCpuMsPerOp: brokerCpu / ops,
    brokerPerCore: brokerCpu > 0 ? (1000 * ops) / brokerCpu : 0,
    loadCpuMsPerOp: ownCpu / ops,
  };
}

/** A bare keep-alive HTTPS client: POSTs a pre-built form, resolves with status and body. */
function formRequest(
  url: string,
  agent: Agent,
  keepBody: boolean,
): (body: Buffer) => Promise<{ status: number; body: Buffer }> {
  const target = new URL(url);
  return (body) =>
    new Promise((resolve, reject) => {
      const req = request(
        {
          host: target.hostname,
          port: target.port,
          path: target.pathname,
          method: 'POST',
          agent,
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            'content-length': body.length,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          if (keepBody) res.on('data', (c: Buffer) => chunks.push(c));
          else res.resume();
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
}

/** POSTs a pre-built form, reads the status, drops the body. */
function formPoster(url: string, agent: Agent): (body: Buffer) => Promise<number> {
  const post = formRequest(url, agent, false);
  return async (body) => (await post(body)).status;
}

/** RFC 7523 client assertions, signed with node:crypto before the measurement starts. */
function clientAssertions(
  clientId: string,
  key: KeyObject,
  audience: string,
  count: number,
): string[] {
  const header = Buffer.from(JSON.stringify({ alg: 'ES256', kid: 'gw-1' })).toString('base64url');
  const iat = Math.floor(Date.now() / 1000);
  return Array.from({ length: count }, () => {
    const claims = { iss: clientId, sub: clientId, aud: audience, jti: randomUUID(), iat };
    const input = `${header}.${Buffer.from(JSON.stringify({ ...claims, exp: iat + 120 })).toString('base64url')}`;
    const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${signature.toString('base64url')}`;
  });
}

const form = (fields: Record<string, string>) =>
  Buffer.from(new URLSearchParams(fields).toString());

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

/**
 * Starts the broker as its own process, configured like the harness's in-process one.
 * `wrap` runs it under another command (e.g. `valgrind --tool=callgrind`).
 */
export async function startBrokerProcess(
  h: Harness,
  dir: string,
  wrap: string[] = [],
): Promise<{ issuer: string; child: ChildProcess }> {
  const server = await h.ca.server('identity');
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text, { mode: 0o600 });
    return join(dir, name);
  };
  const options = {
    port: 0,
    tls: {
      certFile: file('cert.pem', server.cert),
      keyFile: file('key.pem', server.key),
      caFiles: [file('ca.pem', h.ca.cert)],
    },
    databasePath: join(dir, 'identity.db'),
    upstream: { caFiles: [join(dir, 'ca.pem')] },
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
      {
        clientId: 'acme-batch',
        org: 'acme',
        auth: 'tls_client_auth',
        tlsSanUri: PARTNER_SAN,
        grantTypes: ['client_credentials', TOKEN_EXCHANGE_GRANT],
        scopes: ['model:infer'],
      },
    ],
  };
  const main = fileURLToPath(new URL('../identity/main.ts', import.meta.url));
  const profile = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [];
  const args = [...profile, main, '--options-file', file('identity.json', JSON.stringify(options))];
  const [command, ...prefix] = wrap.length ? [...wrap, process.execPath] : [process.execPath];
  const child = spawn(command!, [...prefix, ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`broker exited with ${code}`)));
  });
  return { issuer: (JSON.parse(line) as { issuer: string }).issuer, child };
}

async function measureIssuance(h: Harness, issuer: string, pid: number | undefined) {
  const tokenUrl = `${issuer}/token`;
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca: h.ca.cert });
  const mtlsAgent = new Agent({
    keepAlive: true,
    maxSockets: CONCURRENCY,
    ca: h.ca.cert,
    cert: h.partnerCert.cert,
    key: h.partnerCert.key,
  });
  const post = formPoster(tokenUrl, agent);
  const mtlsPost = formPoster(tokenUrl, mtlsAgent);
  // Enough single-use assertions for the fastest plausible run of the private_key_jwt loops.
  const assertions = clientAssertions(
    'acme-gateway',
    h.gatewayKey,
    issuer,
    (SECONDS + WARMUP_MS / 1000) * 6000,
  );
  let next = 0;
  const assertion = () =>
    assertions[next++] ?? clientAssertions('acme-gateway', h.gatewayKey, issuer, 1)[0]!;
  const ok = async (body: Buffer, poster = post) => (await poster(body)) === 200;
  const subject = await partnerToken(h);
  // Distinct partner tokens, enough for the warm-up and a fast measurement; fetched up front.
  const freshCount = SELECTED.includes('exchange-fresh')
    ? Math.ceil((SECONDS + WARMUP_MS / 1000) * 1200)
    : 0;
  const freshSubjects: string[] = [];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (freshSubjects.length < freshCount) freshSubjects.push(await partnerToken(h));
    }),
  );
  let nextSubject = 0;
  const exchangeForm = {
    grant_type: TOKEN_EXCHANGE_GRANT,
    subject_token: subject,
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    resource: 'urn:bulwark:inference',
  };
  const mtlsCredentials = form({
    grant_type: 'client_credentials',
    client_id: 'acme-batch',
    resource: 'urn:bulwark:inference',
  });
  const mtlsExchange = form({ ...exchangeForm, client_id: 'acme-batch' });
  const phases: Record<IssuancePhase, () => Promise<boolean>> = {
    'client-credentials': () =>
      ok(
        form({
          grant_type: 'client_credentials',
          client_id: 'acme-gateway',
          client_assertion_type: ASSERTION_TYPE,
          client_assertion: assertion(),
          resource: 'urn:bulwark:inference',
        }),
      ),
    'client-credentials-mtls': () => ok(mtlsCredentials, mtlsPost),
    exchange: () =>
      ok(
        form({
          ...exchangeForm,
          client_id: 'acme-gateway',
          client_assertion_type: ASSERTION_TYPE,
          client_assertion: assertion(),
        }),
      ),
    'exchange-mtls': () => ok(mtlsExchange, mtlsPost),
    // Every request brings a subject token the broker has not seen (no verified-token hit).
    'exchange-fresh': () =>
      ok(
        form({
          ...exchangeForm,
          subject_token: freshSubjects[nextSubject++ % freshSubjects.length]!,
          client_id: 'acme-gateway',
          client_assertion_type: ASSERTION_TYPE,
          client_assertion: assertion(),
        }),
      ),
  };
  const results: Partial<Record<IssuancePhase, IssuanceMeasured>> = {};
  try {
    for (const phase of ISSUANCE_PHASES) {
      if (SELECTED.includes(phase)) results[phase] = await closedLoop(phases[phase], pid);
    }
    return results;
  } finally {
    agent.destroy();
    mtlsAgent.destroy();
  }
}

/** Mesh access tokens from the broker (mTLS client credentials), all distinct. */
async function issueTokens(h: Harness, issuer: string, count: number): Promise<string[]> {
  const agent = new Agent({
    keepAlive: true,
    maxSockets: 8,
    ca: h.ca.cert,
    cert: h.partnerCert.cert,
    key: h.partnerCert.key,
  });
  const post = formRequest(`${issuer}/token`, agent, true);
  const body = form({
    grant_type: 'client_credentials',
    client_id: 'acme-batch',
    resource: 'urn:bulwark:inference',
  });
  const one = async () => {
    const res = await post(body);
    const parsed = JSON.parse(res.body.toString()) as { access_token?: string };
    if (res.status === 200 && parsed.access_token) return parsed.access_token;
    throw new Error(`token request failed with ${res.status}`);
  };
  const tokens: string[] = [];
  try {
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (tokens.length < count) tokens.push(await one());
      }),
    );
  } finally {
    agent.destroy();
  }
  return tokens.slice(0, count);
}

/** Sequential verifications on this thread for VERIFY_MS: rate, latency, CPU per call. */
async function verifyLoop(
  op: (i: number) => Promise<unknown> | unknown,
  warmUp: (i: number) => Promise<unknown> | unknown = op,
): Promise<VerifyMeasured> {
  // A short unmeasured run first, so that no variant pays for the JIT's warm-up.
  const warm = performance.now() + Math.min(300, VERIFY_MS / 4);
  for (let i = 0; performance.now() < warm; i++) await warmUp(i);
  const latencies: number[] = [];
  let errors = 0;
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const end = started + VERIFY_MS;
  for (let i = 0; performance.now() < end; i++) {
    const t = performance.now();
    try {
      await op(i);
      latencies.push(performance.now() - t);
    } catch {
      errors += 1;
    }
  }
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuUs = cpu.user + cpu.system;
  const count = latencies.length;
  latencies.sort((a, b) => a - b);
  return {
    perSecond: count / elapsed,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    count,
    errors,
    cpuUsPerOp: cpuUs / Math.max(1, count + errors),
    perCore: (1e6 * (count + errors)) / Math.max(1, cpuUs),
  };
}

async function measureVerification(h: Harness, issuer: string) {
  const tokens = await issueTokens(h, issuer, TOKEN_POOL);
  const jwks = (await (await h.fetch(`${issuer}/jwks`)).json()) as { keys: JWK[] };
  const keys = createLocalJWKSet(jwks);
  const audience = 'urn:bulwark:inference';
  const token = (i: number) => tokens[i % tokens.length]!;
  const jose = await verifyLoop((i) =>
    jwtVerify(token(i), keys, { issuer, audience, typ: 'at+jwt', algorithms: ['ES256'] }),
  );
  const uncached = createJwtVerifier({ issuer, audience, keys, cacheSize: 0 });
  const firstSeen = await verifyLoop((i) => uncached.verify(token(i)));
  // Every token of the pool is new to this verifier once, then comes back again and again.
  // (The warm-up uses separate instances, so the measured caches start empty.)
  const cachedVerifier = createJwtVerifier({ issuer, audience, keys });
  const warmVerifier = createJwtVerifier({ issuer, audience, keys });
  const repeat = await verifyLoop(
    (i) => cachedVerifier.verify(token(i)),
    (i) => warmVerifier.verify(token(i)),
  );
  const policyVerifier = createTokenVerifier({ issuer, audience, keys });
  const warmPolicy = createTokenVerifier({ issuer, audience, keys });
  const policyRepeat = await verifyLoop(
    (i) => policyVerifier.verify(token(i)),
    (i) => warmPolicy.verify(token(i)),
  );

  // The machine's ceiling for one ES256 signature check, for reading the numbers above.
  const kid = JSON.parse(Buffer.from(tokens[0]!.split('.')[0]!, 'base64url').toString()).kid;
  const publicKey = createPublicKey({
    key: jwks.keys.find((k) => k.kid === kid)! as never,
    format: 'jwk',
  });
  const parts = tokens.map((t) => {
    const dot = t.lastIndexOf('.');
    return { data: Buffer.from(t.slice(0, dot)), sig: Buffer.from(t.slice(dot + 1), 'base64url') };
  });
  const raw = await verifyLoop((i) => {
    const { data, sig } = parts[i % parts.length]!;
    if (!verifySignature('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig)) {
      throw new Error('signature check failed');
    }
  });
  return {
    jose,
    firstSeen,
    repeat,
    repeatCache: cachedVerifier.cacheStats(),
    policyRepeat,
    raw,
  };
}

export async function run(): Promise<BenchReport> {
  const h = await startHarness();
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-bench-identity-'));
  const broker = await startBrokerProcess(h, dir);
  try {
    const issuance = await measureIssuance(h, broker.issuer, broker.child.pid);
    const verification = await measureVerification(h, broker.issuer);
    const row = (name: string, m: IssuanceMeasured) =>
      `${name.padEnd(38)} ${m.perSecond.toFixed(0).padStart(6)}/s  p50 ${m.p50Ms.toFixed(2)} ms  p99 ${m.p99Ms.toFixed(2)} ms  broker ${m.brokerCpuMsPerOp.toFixed(3)} ms CPU/op = ${m.brokerPerCore.toFixed(0)}/s per core  load ${m.loadCpuMsPerOp.toFixed(3)} ms CPU/op  (${m.count} ok, ${m.errors} errors)`;
    const vrow = (name: string, m: VerifyMeasured) =>
      `${name.padEnd(38)} ${m.perCore.toFixed(0).padStart(7)}/s per core  ${m.perSecond.toFixed(0).padStart(7)}/s wall  ${m.cpuUsPerOp.toFixed(1)} us CPU/op  p50 ${(m.p50Ms * 1000).toFixed(1)} us  p99 ${(m.p99Ms * 1000).toFixed(1)} us  (${m.count} ok, ${m.errors} errors)`;
    const text = [
      `issuance: broker in its own process, ${SECONDS}s closed loop, ${CONCURRENCY} in flight, HTTPS keep-alive, SQLite, ES256`,
      ...ISSUANCE_PHASES.filter((p) => issuance[p]).map((p) => row(PHASE_NAMES[p], issuance[p]!)),
      `verification: in process, one call at a time, ${VERIFY_MS} ms each, local JWKS, ${TOKEN_POOL} distinct broker tokens in turn; per core = calls per CPU second`,
      vrow('jose jwtVerify (WebCrypto)', verification.jose),
      vrow('first seen: createJwtVerifier, no cache', verification.firstSeen),
      vrow('repeat: createJwtVerifier + cache', verification.repeat),
      vrow('repeat: policy createTokenVerifier', verification.policyRepeat),
      vrow('raw ECDSA P-256 verify (node:crypto)', verification.raw),
      `  cache: ${verification.repeatCache.hits} hits, ${verification.repeatCache.misses} misses (first sight of each token), ${verification.repeatCache.evictions} evictions`,
      'targets: >= 1,000 issuances/s; >= 50,000 verifications/s per core',
    ].join('\n');
    return {
      title: 'identity broker: token issuance and verification',
      text,
      data: { seconds: SECONDS, concurrency: CONCURRENCY, issuance, verification },
    };
  } finally {
    broker.child.kill('SIGTERM');
    await new Promise((resolve) => broker.child.once('exit', resolve));
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
