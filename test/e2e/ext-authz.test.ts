import type { Client, ServiceError } from '@grpc/grpc-js';
import { serviceFiles } from '../../mesh/ca/index.ts';
import { createMeshClient, type GrpcClientConstructor } from '../../mesh/kit/index.ts';
import { loadEnvoyAuthorization } from '../../services/policy/envoy-protos.ts';
import type { CheckRequest, CheckResponse } from '../../services/policy/ext-authz.ts';
import { meshClients } from './support/mesh-clients.ts';
import { runBulwark, startUp, until, type UpMesh } from './support/up-process.ts';

// The test plays the Envoy gateway: it sends the ext_authz CheckRequests Envoy would send (with
// Envoy's own protos, over mTLS with the gateway's certificate) to the policy service that
// `bulwark up` runs, carrying real tokens from the broker.

interface AuthorizationClient extends Client {
  Check(req: CheckRequest, cb: (err: ServiceError | null, res: CheckResponse) => void): void;
}

let mesh: UpMesh;
let clients: ReturnType<typeof meshClients>;
let envoy: AuthorizationClient;

beforeAll(async () => {
  mesh = await startUp();
  clients = meshClients(mesh);
  const Ctor = loadEnvoyAuthorization().client as GrpcClientConstructor<AuthorizationClient>;
  envoy = createMeshClient(Ctor, {
    address: `127.0.0.1:${mesh.base + 1}`,
    tls: serviceFiles(clients.certs, 'gateway'),
    expectedServer: 'spiffe://bulwark.local/svc/policy',
  });
}, 90_000);

afterAll(async () => {
  envoy?.close();
  if (mesh) expect(await mesh.stop()).toBe(0);
});

function check(headers: Record<string, string>): Promise<CheckResponse> {
  const req: CheckRequest = {
    attributes: {
      source: { address: { socketAddress: { address: '203.0.113.5' } } },
      request: {
        http: { method: 'POST', path: '/inference.GRPCInferenceService/ModelInfer', headers },
      },
    },
  };
  return new Promise((resolve, reject) =>
    envoy.Check(req, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

const headersOf = (res: CheckResponse) =>
  Object.fromEntries((res.okResponse?.headers ?? []).map((h) => [h.header.key, h.header.value]));

test('an acme back-end token is allowed on iris, with the identity headers for the upstream', async () => {
  const token = await clients.secretToken('acme');
  const res = await check({ authorization: `Bearer ${token}`, 'x-bulwark-model': 'iris' });
  expect(res.status.code).toBe(0);
  expect(headersOf(res)).toMatchObject({ 'x-bulwark-org': 'acme' });
  expect(headersOf(res)['x-bulwark-subject']).toMatch(/^acme\//);
});

test('refused: the globex back-end on the acme-only credit model (PERMISSION_DENIED, audited)', async () => {
  const token = await clients.secretToken('globex');
  const res = await check({ authorization: `Bearer ${token}`, 'x-bulwark-model': 'credit' });
  expect(res.status.code).toBe(7);
  expect(res.okResponse).toBeUndefined();
  expect(res.deniedResponse?.status.code).toBe('Forbidden');
  await until(
    'the policy decision in the audit log',
    async () => {
      const tail = runBulwark([
        'audit',
        'tail',
        '-n',
        '20',
        '--sqlite',
        `${mesh.stateDir}/audit.sqlite`,
      ]);
      await tail.exited;
      return tail
        .out()
        .split('\n')
        .some((l) => l.includes('globex') && l.includes('credit'));
    },
    15_000,
  );
});

test('refused: no token, and a token for another audience (UNAUTHENTICATED)', async () => {
  const none = await check({ 'x-bulwark-model': 'iris' });
  expect(none.status.code).toBe(16);
  // A real, valid broker token, but minted for the audit service: not for inference.
  const other = await clients.secretToken('acme', 'urn:bulwark:audit');
  const res = await check({ authorization: `Bearer ${other}`, 'x-bulwark-model': 'iris' });
  expect(res.status.code).toBe(16);
  expect(res.okResponse).toBeUndefined();
});
