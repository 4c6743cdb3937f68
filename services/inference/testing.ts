/**
 * A whole inference stack for tests and benchmarks, with real parts throughout: a test mesh CA,
 * the real audit service (SQLite) and policy service (the repository's `policy/` files) on
 * their own mTLS mesh servers, the demo models built and signed at run time, and the inference
 * service on a mesh server that accepts TLS + token callers and partner certificates.
 */
import { generateKeyPairSync } from 'node:crypto';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { AuditServiceClient } from '../../gen/bulwark/audit/v1/audit.ts';
import { ModelServiceClient } from '../../gen/bulwark/model/v1/model.ts';
import { GRPCInferenceServiceClient } from '../../gen/inference/grpc_service.ts';
import { PolicyServiceClient } from '../../gen/bulwark/policy/v1/policy.ts';
import { createTestPki, spiffeIdOf, type TestPki, type TestWorkload } from '../../mesh/ca/index.ts';
import { createMeshClient, createMeshServer, type MeshServer } from '../../mesh/kit/index.ts';
import type { Telemetry } from '../../mesh/telemetry/index.ts';
import { createAuditService, type AuditService } from '../audit/service.ts';
import { openSqliteStore } from '../audit/store/sqlite-store.ts';
import { createFileSource, createPolicyService, type PolicyService } from '../policy/index.ts';
import { createTestIssuer, type TestIssuer } from '../policy/testing.ts';
import { generateSignerKey, loadTrustedKey } from './bundle/signing.ts';
import { buildDemoBundles } from './demo/build.ts';
import {
  createInferenceService,
  type InferenceService,
  type InferenceServiceOptions,
} from './server/create-inference-service.ts';
import { promiseAuditClient, promisePolicyClient } from './server/grpc-clients.ts';
import type { AuditClient } from './guards/audit-guard.ts';
import { channelOptions } from './client/connect.ts';

const POLICY_DIR = fileURLToPath(new URL('../../policy/', import.meta.url));

export interface InferenceStack {
  dir: string;
  pki: TestPki;
  idp: TestIssuer;
  audit: AuditService;
  policy: PolicyService;
  service: InferenceService;
  server: MeshServer;
  address: string;
  /** The withheld-answer queue file of the inference service. */
  withheldFile: string;
  /** Signed demo bundles not registered yet (e.g. iris v2), by `<name>/<version>`. */
  demoDir: string;
  signer: ReturnType<typeof generateSignerKey>;
  /** A client over TLS without a client certificate (token only). */
  tlsClient<C extends grpc.Client>(
    ctor: new (a: string, c: grpc.ChannelCredentials, o?: object) => C,
  ): C;
  /** A client presenting a partner certificate (for certificate-bound tokens). */
  partnerClient<C extends grpc.Client>(
    ctor: new (a: string, c: grpc.ChannelCredentials, o?: object) => C,
  ): C;
  partner: TestWorkload;
  /** Stops the audit server (to show fail-closed behaviour). */
  stopAudit(): Promise<void>;
  close(): Promise<void>;
}

export interface StackOptions {
  service?: Partial<InferenceServiceOptions>;
  /** Telemetry of the inference service: server spans, client spans to policy and audit. */
  telemetry?: Telemetry;
  logger?: Logger;
  /** Grpc-js server options of the inference server (e.g. message size limits). */
  grpcOptions?: grpc.ServerOptions;
  /** Wraps the (real) audit client, e.g. to lose acknowledgements on purpose. */
  wrapAudit?: (client: AuditClient) => AuditClient;
}

function tlsOnlyCredentials(
  caPem: string,
  expected: string,
  cert?: TestWorkload,
): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(
    Buffer.from(caPem),
    cert ? Buffer.from(cert.keyPem) : null,
    cert ? Buffer.from(cert.certPem) : null,
    {
      // Mesh certificates name the service by URI SAN, not by host name: check that instead.
      checkServerIdentity: (_host, peer) => {
        try {
          return spiffeIdOf(peer) === expected ? undefined : new Error(`server is not ${expected}`);
        } catch (err) {
          return err as Error;
        }
      },
    },
  );
}

/**
 * @example
 * ```ts
 * const stack = await startInferenceStack();
 * const client = stack.tlsClient(GRPCInferenceServiceClient);
 * ```
 */
export async function startInferenceStack(options: StackOptions = {}): Promise<InferenceStack> {
  const logger = options.logger ?? pino({ level: 'silent' });
  const dir = await mkdtemp(path.join(tmpdir(), 'bulwark-inference-'));
  const pki = await createTestPki({
    services: ['inference', 'policy', 'audit', 'gateway'],
    clients: [{ org: 'acme', name: 'app' }],
  });
  const idp = await createTestIssuer();
  const spiffe = (n: string) => pki.services[n]!.spiffeId;

  const audit = await createAuditService({
    store: openSqliteStore({ path: path.join(dir, 'audit.db') }),
    signingKey: generateKeyPairSync('ed25519').privateKey,
    logger,
    checkpointIntervalMs: 0,
  });
  let auditServer: MeshServer | undefined = createMeshServer({
    tls: pki.services.audit!,
    allowedPeers: [spiffe('inference')],
    logger,
  });
  audit.addTo(auditServer);
  const auditAddress = (await auditServer.listen()).address;

  const policy = await createPolicyService({
    source: createFileSource({
      modelPath: path.join(POLICY_DIR, 'model.conf'),
      policyPath: path.join(POLICY_DIR, 'policy.yaml'),
    }),
    logger,
    watch: false,
    tokens: { issuer: idp.issuer, audience: 'urn:bulwark:inference', keys: idp.keys },
  });
  const policyServer = createMeshServer({
    tls: pki.services.policy!,
    allowedPeers: [spiffe('inference')],
    logger,
  });
  policy.addTo(policyServer);
  const policyAddress = (await policyServer.listen()).address;

  const clientOpts = {
    tls: pki.services.inference!,
    logger,
    ...(options.telemetry ? { interceptors: [options.telemetry.clientInterceptor] } : {}),
  };
  const auditClient = createMeshClient(AuditServiceClient, {
    ...clientOpts,
    address: auditAddress,
    expectedServer: spiffe('audit'),
  });
  const policyClient = createMeshClient(PolicyServiceClient, {
    ...clientOpts,
    address: policyAddress,
    expectedServer: spiffe('policy'),
  });

  const signer = generateSignerKey();
  const demoDir = path.join(dir, 'demo');
  await buildDemoBundles({ outDir: demoDir, privateKeyPem: signer.privateKeyPem });
  const modelDir = path.join(dir, 'models');
  await cp(path.join(demoDir, 'iris', '1'), path.join(modelDir, 'iris', '1'), { recursive: true });
  await cp(path.join(demoDir, 'credit', '1'), path.join(modelDir, 'credit', '1'), {
    recursive: true,
  });

  const withheldFile = path.join(dir, 'inference', 'withheld-answers.jsonl');
  const service = createInferenceService({
    trustedSignerKeys: [loadTrustedKey(signer.publicKeyPem)],
    modelDir,
    tokens: { issuer: idp.issuer, keys: idp.keys },
    policy: promisePolicyClient(policyClient),
    audit: (options.wrapAudit ?? ((c: AuditClient) => c))(promiseAuditClient(auditClient, 2000)),
    auditTimeoutMs: 2000,
    withheldFile,
    logger,
    ...options.service,
  });
  await service.start();
  const server = createMeshServer({
    tls: pki.services.inference!,
    allowedPeers: [spiffe('gateway'), 'spiffe://bulwark.local/partner/*'],
    clientCertificate: 'optional',
    logger,
    ...(options.telemetry ? { interceptors: [options.telemetry.serverInterceptor] } : {}),
    ...(options.grpcOptions ? { grpcOptions: options.grpcOptions } : {}),
  });
  service.attach(server);
  const { address } = await server.listen();
  const clients: grpc.Client[] = [];
  const partner = pki.clients['acme/app']!;

  return {
    dir,
    pki,
    idp,
    audit,
    policy,
    service,
    server,
    address,
    demoDir,
    withheldFile,
    signer,
    partner,
    tlsClient(ctor) {
      const c = new ctor(address, tlsOnlyCredentials(pki.caPem, spiffe('inference')), {
        'grpc.max_send_message_length': 128 * 1024 * 1024,
        ...channelOptions(address),
      });
      clients.push(c);
      return c;
    },
    partnerClient(ctor) {
      const c = new ctor(
        address,
        tlsOnlyCredentials(pki.caPem, spiffe('inference'), partner),
        channelOptions(address),
      );
      clients.push(c);
      return c;
    },
    async stopAudit() {
      await auditServer?.shutdown(100);
      auditServer = undefined;
    },
    async close() {
      for (const c of clients) c.close();
      auditClient.close();
      policyClient.close();
      await server.shutdown(500);
      await service.close();
      await policyServer.shutdown(500);
      await auditServer?.shutdown(500);
      await policy.close();
      await audit.close();
      await pki.cleanup();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export { GRPCInferenceServiceClient, ModelServiceClient };
