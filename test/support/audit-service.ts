/** Helpers for audit service tests: an in-process mesh server and promisified clients. */
import { Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import { pino } from 'pino';
import {
  AppendRequest,
  AuditServiceClient,
  GetCheckpointRequest,
  GetConsistencyProofRequest,
  GetInclusionProofRequest,
  QueryRequest,
  VerifyRequest,
} from '../../gen/bulwark/audit/v1/audit.ts';
import { createTestPki, type TestPki } from '../../mesh/ca/testing.ts';
import { createMeshClient, createMeshServer, type MeshServer } from '../../mesh/kit/index.ts';
import {
  createAuditService,
  type AuditService,
  type AuditServiceOptions,
} from '../../services/audit/index.ts';

export const quietLogger = pino({ level: 'silent' });

/** In-memory PEM credentials of a test workload (no file watcher to leak). */
export function pemOf(pki: TestPki, name: string) {
  const w = pki.services[name]!;
  return { certPem: w.certPem, keyPem: w.keyPem, caPem: w.caPem };
}

// ts-proto encoders need complete messages: fill defaults from partial requests.
const requestTypes: Record<string, { fromPartial(p: never): unknown }> = {
  append: AppendRequest,
  query: QueryRequest,
  getCheckpoint: GetCheckpointRequest,
  getInclusionProof: GetInclusionProofRequest,
  getConsistencyProof: GetConsistencyProofRequest,
  verify: VerifyRequest,
};

export interface AuditHarness {
  pki: TestPki;
  server: MeshServer;
  audit: AuditService;
  address: string;
  client(name: string): AuditServiceClient;
  close(): Promise<void>;
}

export async function startAuditHarness(
  options: Omit<AuditServiceOptions, 'logger'> & {
    allowedPeers?: string[];
    logger?: AuditServiceOptions['logger'];
  },
): Promise<AuditHarness> {
  const pki = await createTestPki({
    services: ['audit', 'inference', 'policy', 'gateway', 'auditor', 'rogue'],
  });
  const id = (n: string) => `spiffe://bulwark.local/svc/${n}`;
  const audit = await createAuditService({
    logger: quietLogger,
    checkpointIntervalMs: 0,
    ...options,
  });
  const server = createMeshServer({
    tls: pki.services.audit!,
    allowedPeers: options.allowedPeers ?? ['inference', 'policy', 'gateway', 'auditor'].map(id),
    logger: quietLogger,
  });
  audit.addTo(server);
  const { address } = await server.listen();
  const clients: Client[] = [];
  return {
    pki,
    server,
    audit,
    address,
    client: (name) => {
      const c = createMeshClient(AuditServiceClient, {
        address,
        tls: pemOf(pki, name),
        expectedServer: id('audit'),
        logger: quietLogger,
      });
      clients.push(c);
      return c;
    },
    close: async () => {
      for (const c of clients) c.close();
      await server.shutdown(100);
      await audit.close();
      await pki.cleanup();
    },
  };
}

/** Calls a unary method of a grpc-js client as a promise. */
export function call<Req, Res>(
  client: AuditServiceClient,
  method: keyof AuditServiceClient,
  request: Req,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = client[method] as unknown as (
      req: Req,
      md: Metadata,
      cb: (err: ServiceError | null, res: Res) => void,
    ) => void;
    const full = (requestTypes[method as string]?.fromPartial(request as never) ?? request) as Req;
    fn.call(client, full, new Metadata(), (err, res) => (err ? reject(err) : resolve(res)));
  });
}
