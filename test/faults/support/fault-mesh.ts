/**
 * A mesh of real service processes for fault tests: a throw-away mesh CA with certificates on
 * disk, one `bulwark.yaml` naming fixed loopback ports (so a killed service comes back where
 * its peers look for it), and starters for the audit, policy, inference and identity entry
 * points. Each service keeps its state in the mesh's temp directory; `close()` kills every
 * process and removes the directory.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { AuditServiceClient } from '../../../gen/bulwark/audit/v1/audit.ts';
import { GRPCInferenceServiceClient } from '../../../gen/inference/grpc_service.ts';
import { createTestPki, spiffeIdOf, type TestPki } from '../../../mesh/ca/index.ts';
import { createMeshClient } from '../../../mesh/kit/index.ts';
import { ChildSet, REPO_ROOT, type ServiceProcess } from './child-service.ts';
import { freePort } from './free-port.ts';

/** Where the services verify tokens: a JWKS file (test issuer) or the broker's JWKS URL. */
export interface TokenSource {
  issuer: string;
  jwksFile?: string;
  jwksUrl?: string;
}

/** The SPIFFE ID of the test's own audit reader (`--readers`). */
export const AUDITOR_SERVICE = 'auditor';

export interface FaultMesh {
  dir: string;
  pki: TestPki;
  children: ChildSet;
  ports: { audit: number; policy: number; identity: number };
  /** The audit log database; survives audit restarts. */
  auditDb: string;
  startAudit(): Promise<ServiceProcess>;
  startPolicy(tokens: TokenSource): Promise<ServiceProcess>;
  /** Starts inference with the demo models; resolves with its address. */
  startInference(tokens: TokenSource): Promise<{ proc: ServiceProcess; address: string }>;
  /** Starts the identity broker from a launch options object (file paths inside). */
  startBroker(options: Record<string, unknown>): Promise<{ proc: ServiceProcess; issuer: string }>;
  /** A TLS client of inference without a client certificate (token callers). */
  inferenceClient(address: string): GRPCInferenceServiceClient;
  /** A mesh client of audit with the reader certificate. */
  auditReader(): AuditServiceClient;
  close(): Promise<void>;
}

const READY = {
  audit: /"msg":"audit service ready"/,
  policy: /"msg":"policy service ready"/,
  inference: /"address":"([^"]+)"[^\n]*"msg":"inference service ready"/,
  identity: /^\{"issuer":"([^"]+)"/m,
};

/**
 * @example
 * ```ts
 * const mesh = await createFaultMesh();
 * await mesh.startAudit();
 * ...
 * await mesh.close();
 * ```
 */
export async function createFaultMesh(): Promise<FaultMesh> {
  const dir = await mkdtemp(join(tmpdir(), 'bulwark-faults-'));
  const children = new ChildSet();
  const clients: grpc.Client[] = [];
  try {
    const certs = join(dir, 'certs');
    const pki = await createTestPki({
      dir: certs,
      services: ['audit', 'policy', 'inference', 'identity', AUDITOR_SERVICE],
    });
    const ports = { audit: await freePort(), policy: await freePort(), identity: await freePort() };
    const auditDb = join(dir, 'audit.sqlite');
    const configFile = join(dir, 'bulwark.yaml');
    await writeFile(
      configFile,
      [
        'version: 1',
        `stateDir: ${join(dir, 'state')}`,
        'services:',
        '  identity:',
        `    port: ${ports.identity}`,
        `    publicUrl: https://127.0.0.1:${ports.identity}`,
        '  policy:',
        `    port: ${ports.policy}`,
        '    metricsPort: 0',
        '  audit:',
        `    port: ${ports.audit}`,
        '    metricsPort: 0',
        `    peers: [inference, policy, identity, ${AUDITOR_SERVICE}]`,
        '  inference:',
        '    metricsPort: 0',
        'policy:',
        `  modelFile: ${join(REPO_ROOT, 'policy', 'model.conf')}`,
        `  policyFile: ${join(REPO_ROOT, 'policy', 'policy.yaml')}`,
        '  watch: false',
        'storage:',
        '  kind: sqlite',
        `  path: ${auditDb}`,
        'telemetry:',
        '  logLevel: info',
        '',
      ].join('\n'),
    );
    const common = ['--config', configFile, '--certs', certs];
    const tokenArgs = (t: TokenSource) => [
      '--issuer',
      t.issuer,
      ...(t.jwksFile ? ['--jwks-file', t.jwksFile] : []),
      ...(t.jwksUrl ? ['--jwks', t.jwksUrl] : []),
    ];
    // Services fetching the broker's JWKS over HTTPS trust the mesh CA.
    const env = { NODE_EXTRA_CA_CERTS: pki.caFile };

    const mesh: FaultMesh = {
      dir,
      pki,
      children,
      ports,
      auditDb,
      startAudit: () =>
        children.start({
          name: 'audit',
          entry: 'services/audit/main.ts',
          args: [
            ...common,
            '--sqlite',
            auditDb,
            '--key',
            join(dir, 'audit-checkpoint.key'),
            '--readers',
            pki.services[AUDITOR_SERVICE]!.spiffeId,
            '--no-metrics',
          ],
          env,
          ready: READY.audit,
        }),
      startPolicy: (tokens) =>
        children.start({
          name: 'policy',
          entry: 'services/policy/main.ts',
          args: [...common, ...tokenArgs(tokens)],
          env,
          ready: READY.policy,
        }),
      async startInference(tokens) {
        const proc = await children.start({
          name: 'inference',
          entry: 'services/inference/main.ts',
          args: [...common, ...tokenArgs(tokens), '--port', '0', '--demo', '--no-metrics'],
          env,
          ready: READY.inference,
          // Trains and signs the demo models first.
          readyTimeoutMs: 120_000,
        });
        return { proc, address: proc.ready[1]! };
      },
      async startBroker(options) {
        const file = join(dir, 'identity.json');
        await writeFile(file, JSON.stringify(options), { mode: 0o600 });
        const proc = await children.start({
          name: 'identity',
          entry: 'identity/main.ts',
          args: ['--options-file', file],
          env,
          ready: READY.identity,
        });
        return { proc, issuer: proc.ready[1]! };
      },
      inferenceClient(address) {
        const expected = pki.services.inference!.spiffeId;
        const client = new GRPCInferenceServiceClient(
          address,
          grpc.credentials.createSsl(Buffer.from(pki.caPem), null, null, {
            // Mesh certificates name the service by URI SAN: check that, not the host name.
            checkServerIdentity: (_host, peer) =>
              spiffeIdOf(peer) === expected ? undefined : new Error(`server is not ${expected}`),
          }),
        );
        clients.push(client);
        return client;
      },
      auditReader() {
        const client = createMeshClient(AuditServiceClient, {
          address: `127.0.0.1:${ports.audit}`,
          tls: pki.services[AUDITOR_SERVICE]!,
          expectedServer: pki.services.audit!.spiffeId,
          logger: pino({ level: 'silent' }),
        });
        clients.push(client);
        return client;
      },
      async close() {
        for (const c of clients) c.close();
        await children.killAll();
        await rm(dir, { recursive: true, force: true });
      },
    };
    return mesh;
  } catch (err) {
    await children.killAll();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
