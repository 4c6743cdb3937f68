/**
 * Process entry of the inference service: maps `bulwark.yaml` (and a few flags) to
 * {@link createInferenceService} options, serves `inference.GRPCInferenceService` and
 * `bulwark.model.v1.ModelService` on the mesh, shuts down gracefully on SIGTERM/SIGINT. Prints
 * one JSON log line `inference service ready` with the bound `address`. `--help` prints
 * {@link USAGE}.
 *
 * Tokens: the broker's JWKS is fetched over HTTPS from `--jwks` (default `<issuer>/jwks`) and
 * cached. That fetch trusts the mesh CA given by `--ca` (default `<certs>/ca.crt`) besides the
 * usual public roots, so no `NODE_EXTRA_CA_CERTS` is needed; `--jwks-file` reads a fixed key set
 * instead.
 *
 * Models: every bundle stored in `--model-dir` (default `<stateDir>/models`) is verified and
 * loaded; then the `models:` of bulwark.yaml are registered. A `bundleDir` is one bundle
 * (holding `manifest.json`) or a folder of versions (`<bundleDir>/<version>/`): every signed
 * version is registered, and the newest becomes stable unless the model was already stored
 * (its routing is kept; promote with `bulwark model promote`). `--demo` trains and signs the
 * demo models at start (key `<stateDir>/demo-signer.key`, created 0600) and trusts that key.
 *
 * Lost audit acknowledgements: answers withheld because their record's acknowledgement was
 * lost are queued in `--withheld-file` (default `<stateDir>/inference/withheld-answers.jsonl`)
 * until the log notes them (see `guards/withheld-answers.ts`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { rootCertificates } from 'node:tls';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLocalJWKSet, createRemoteJWKSet, customFetch } from 'jose';
import { AuditServiceClient } from '../../gen/bulwark/audit/v1/audit.ts';
import { PolicyServiceClient } from '../../gen/bulwark/policy/v1/policy.ts';
import { serviceFiles } from '../../mesh/ca/index.ts';
import { loadConfig } from '../../mesh/config/index.ts';
import { createMeshClient, runServiceProcess } from '../../mesh/kit/index.ts';
import { createLogger, createTelemetry } from '../../mesh/telemetry/index.ts';
import { generateSignerKey, loadTrustedKey } from './bundle/signing.ts';
import { buildDemoBundles } from './demo/build.ts';
import { registerConfiguredModels } from './registry/configured-models.ts';
import { fetchWithCa } from './server/jwks-fetch.ts';
import { createInferenceService } from './server/create-inference-service.ts';
import { promiseAuditClient, promisePolicyClient } from './server/grpc-clients.ts';

/** What `--help` prints. */
export const USAGE = `Usage: node services/inference/main.ts [options]

Serves the Open Inference Protocol v2 and the model admin API on the mesh (mTLS, or TLS + token).

Options:
  --config <file>        bulwark.yaml (default: ./bulwark.yaml, BULWARK_* overrides apply)
  --certs <dir>          mesh certificates: inference.crt/.key and ca.crt (default <stateDir>/certs)
  --port <n>             listen port (default services.inference.port; 0 picks a free one)
  --issuer <url>         token issuer (default services.identity.publicUrl)
  --jwks <url>           the broker's JWKS over HTTPS (default <issuer>/jwks)
  --ca <file>            CA trusted for the JWKS fetch, besides public roots (default <certs>/ca.crt);
                         no NODE_EXTRA_CA_CERTS needed
  --jwks-file <file>     a fixed JWKS instead of fetching one
  --model-dir <dir>      registered bundles (default <stateDir>/models)
  --trust <pub,...>      Ed25519 public keys (PEM) trusted to sign model bundles
  --withheld-file <file> queue of answers withheld after a lost audit acknowledgement
                         (default <stateDir>/inference/withheld-answers.jsonl)
  --demo                 train, sign and register the demo models (iris, credit)
  --no-metrics           do not serve Prometheus metrics
  --help                 show this text

models.<name>.bundleDir in bulwark.yaml is one bundle or a folder of versions (<name>/<version>/):
every signed version is registered; the newest becomes stable unless the model was stored before.
`;

const { values: args } = parseArgs({
  options: {
    help: { type: 'boolean', default: false },
    ca: { type: 'string' },
    'withheld-file': { type: 'string' },
    config: { type: 'string' },
    certs: { type: 'string' },
    port: { type: 'string' },
    issuer: { type: 'string' },
    jwks: { type: 'string' },
    'jwks-file': { type: 'string' },
    'model-dir': { type: 'string' },
    trust: { type: 'string' },
    demo: { type: 'boolean', default: false },
    'no-metrics': { type: 'boolean', default: false },
  },
});

if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const config = loadConfig(args.config ? { file: args.config } : {});
const self = config.services.inference;
const logger = createLogger({ service: 'inference', level: config.telemetry.logLevel });
const telemetry = createTelemetry({ serviceName: 'inference' });
const tls = serviceFiles(args.certs ?? join(config.stateDir, 'certs'), 'inference');
const jwksCa = args.ca ?? tls.caFile;
if (args.ca && !existsSync(args.ca)) {
  logger.fatal(`--ca ${args.ca}: no such file`);
  process.exit(2);
}

const issuer = args.issuer ?? config.services.identity.publicUrl;
if (!issuer) {
  logger.fatal('no token issuer: pass --issuer or set services.identity.publicUrl in bulwark.yaml');
  process.exit(2);
}
const keys = args['jwks-file']
  ? createLocalJWKSet(JSON.parse(readFileSync(args['jwks-file'], 'utf8')))
  : createRemoteJWKSet(new URL(args.jwks ?? `${issuer.replace(/\/$/, '')}/jwks`), {
      cooldownDuration: 30_000,
      cacheMaxAge: 600_000,
      // The broker's certificate comes from the mesh CA: trust it for this fetch only.
      ...(existsSync(jwksCa)
        ? {
            [customFetch]: fetchWithCa(
              [readFileSync(jwksCa, 'utf8'), ...rootCertificates].join('\n'),
            ),
          }
        : {}),
    });

/** The demo signing key: created once (0600) so restarts keep trusting stored demo bundles. */
async function demoKey(): Promise<{ privateKeyPem: string; publicKeyPem: string }> {
  const file = join(config.stateDir, 'demo-signer.key');
  const pub = join(config.stateDir, 'demo-signer.pub');
  if (existsSync(file) && existsSync(pub)) {
    return {
      privateKeyPem: await readFile(file, 'utf8'),
      publicKeyPem: await readFile(pub, 'utf8'),
    };
  }
  const key = generateSignerKey();
  await mkdir(config.stateDir, { recursive: true });
  await writeFile(file, key.privateKeyPem, { mode: 0o600 });
  await writeFile(pub, key.publicKeyPem);
  return key;
}

try {
  const trusted = (args.trust ?? '')
    .split(',')
    .map((f) => f.trim())
    .filter(Boolean)
    .map((f) => loadTrustedKey(readFileSync(f, 'utf8')));
  let demoDir: string | undefined;
  if (args.demo) {
    const key = await demoKey();
    trusted.push(loadTrustedKey(key.publicKeyPem));
    // Built in a scratch directory; registering copies them into the model directory.
    demoDir = await mkdtemp(join(tmpdir(), 'bulwark-demo-models-'));
    await buildDemoBundles({
      outDir: demoDir,
      privateKeyPem: key.privateKeyPem,
      progress: (line) => logger.info(line),
    });
  }
  if (trusted.length === 0) {
    logger.fatal('no trusted model signer: pass --trust <signer.pub> (or --demo)');
    process.exit(2);
  }
  const clientOpts = {
    tls,
    logger,
    interceptors: [telemetry.clientInterceptor],
    channelOptions: {
      'grpc.initial_reconnect_backoff_ms': 200,
      // A restarted peer must be in use again within 2 s of being ready: cap the backoff
      // (grpc-js adds up to 20% jitter) well below that.
      'grpc.max_reconnect_backoff_ms': 1000,
    },
  };
  const policyClient = createMeshClient(PolicyServiceClient, {
    ...clientOpts,
    address: config.services.policy.address,
    expectedServer: config.services.policy.spiffeId,
  });
  const auditClient = createMeshClient(AuditServiceClient, {
    ...clientOpts,
    address: config.services.audit.address,
    expectedServer: config.services.audit.spiffeId,
  });
  const service = createInferenceService({
    trustedSignerKeys: trusted,
    modelDir: args['model-dir'] ?? join(config.stateDir, 'models'),
    tokens: { issuer, keys },
    policy: promisePolicyClient(policyClient),
    audit: promiseAuditClient(auditClient),
    withheldFile:
      args['withheld-file'] ?? join(config.stateDir, 'inference', 'withheld-answers.jsonl'),
    quotas: config.inference.quotas,
    logger,
  });
  await mkdir(args['model-dir'] ?? join(config.stateDir, 'models'), { recursive: true });
  await service.start();
  await registerConfiguredModels(
    service.registry,
    [
      ...config.models,
      // The demo keeps version 1 stable (version 2 is there for canary and promote).
      ...(demoDir
        ? ['iris/1', 'iris/2', 'credit/1'].map((p) => ({
            name: p.split('/')[0]!,
            bundleDir: join(demoDir, p),
          }))
        : []),
    ],
    logger,
  );
  if (demoDir) await rm(demoDir, { recursive: true, force: true });
  const { address } = await runServiceProcess({
    self,
    tls,
    ...(args.port !== undefined ? { port: Number(args.port) } : {}),
    logger,
    telemetry,
    metricsHost: args['no-metrics'] ? false : config.telemetry.metricsHost,
    register: (server) => service.attach(server),
    close: async () => {
      await service.close();
      policyClient.close();
      auditClient.close();
    },
  });
  logger.info(
    {
      address,
      models: service.registry.list().map((m) => `${m.name}@${m.stable}`),
      quotas: config.inference.quotas,
    },
    'inference service ready',
  );
} catch (err) {
  logger.fatal(
    { err },
    `inference service cannot start: ${err instanceof Error ? err.message : String(err)}`,
  );
  process.exit(1);
}
