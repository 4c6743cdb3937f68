import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import type { ModelInferResponse } from '../../gen/inference/grpc_service.ts';
import { readSpanFile } from '../../mesh/telemetry/index.ts';
import { creditFeatures } from '../../services/inference/demo/datasets.ts';
import { approveDeviceLogin } from './support/device-approval.ts';
import { meshClients } from './support/mesh-clients.ts';
import { cleanEnv, runBulwark, startUp, until, type UpMesh } from './support/up-process.ts';

// The whole path on the processes `bulwark up` starts: a partner back-end gets a token from the
// broker (client credentials), calls ModelInfer on iris over TLS with it, and the audit receipt
// in the response leads to an inclusion proof that verifies against the signed checkpoint.

let mesh: UpMesh;
let clients: ReturnType<typeof meshClients>;
const certs = () => clients.certs;

beforeAll(async () => {
  mesh = await startUp();
  clients = meshClients(mesh);
}, 90_000);

afterAll(async () => {
  if (mesh) expect(await mesh.stop()).toBe(0);
});

const secretToken = (org: string) => clients.secretToken(org);
const infer = (...args: Parameters<typeof clients.infer>) => clients.infer(...args);

const param = (res: ModelInferResponse, name: string) =>
  res.parameters[name]?.parameterChoice?.value;

test('client credentials token → ModelInfer on iris → audit receipt → inclusion proof verifies', async () => {
  const token = await secretToken('acme');
  const res = await infer(token, 'iris', [5.1, 3.5, 1.4, 0.2]);
  const label = res.outputs.find((o) => o.name === 'label');
  expect(label?.contents?.int64Contents.map(Number)).toEqual([0]); // Iris setosa
  const leaf = Number(param(res, 'bulwark.audit.leaf_index'));
  expect(Number.isSafeInteger(leaf)).toBe(true);
  expect(param(res, 'bulwark.audit.log_id')).toBe('bulwark.local/audit');

  // Checkpoints are signed as the log grows: wait until one covers the leaf, then prove it.
  let proof: { verified?: boolean; record?: Record<string, unknown> } = {};
  await until(
    'a checkpoint covering the inference record',
    async () => {
      const run = runBulwark([
        'audit',
        'proof',
        String(leaf),
        '--sqlite',
        join(mesh.stateDir, 'audit.sqlite'),
      ]);
      if ((await run.exited) !== 0) return false;
      proof = JSON.parse(run.out()) as typeof proof;
      return true;
    },
    20_000,
  );
  expect(proof.verified).toBe(true);
  expect(JSON.stringify(proof.record)).toContain('iris');
  expect(JSON.stringify(proof.record)).toContain('acme');

  // One trace joins the inference call with its policy decision and its audit append; the
  // audit record carries that trace id.
  const traceId = (proof.record as { traceId?: string } | undefined)?.traceId;
  expect(traceId).toMatch(/^[0-9a-f]{32}$/);
  await until(
    'inference, policy and audit spans of one trace',
    () => {
      const services = new Set(
        readSpanFile(mesh.traceFile)
          .filter((s) => s.traceId === traceId)
          .map((s) => s.service),
      );
      return ['inference', 'policy', 'audit'].every((s) => services.has(s));
    },
    20_000,
  );
}, 60_000);

test('refused: a globex back-end calling the acme-only credit model (PERMISSION_DENIED)', async () => {
  const token = await secretToken('globex');
  const row = creditFeatures.map((f) => (f.min + f.max) / 2);
  await expect(infer(token, 'credit', row)).rejects.toMatchObject({
    code: status.PERMISSION_DENIED,
  });
  // The refusal is in the audit log.
  await until(
    'the refusal in the audit log',
    async () => {
      const run = runBulwark([
        'audit',
        'tail',
        '-n',
        '20',
        '--sqlite',
        join(mesh.stateDir, 'audit.sqlite'),
      ]);
      await run.exited;
      return run
        .out()
        .split('\n')
        .some((l) => l.includes('globex') && l.includes('credit') && /deny|denied/i.test(l));
    },
    10_000,
  );
}, 30_000);

test('refused: a token with a forged signature (UNAUTHENTICATED)', async () => {
  const token = await secretToken('acme');
  const [h, p] = token.split('.');
  const forged = `${h}.${p}.${Buffer.from('x'.repeat(64)).toString('base64url')}`;
  await expect(infer(forged, 'iris', [5.1, 3.5, 1.4, 0.2])).rejects.toMatchObject({
    code: status.UNAUTHENTICATED,
  });
}, 30_000);

test('a certificate-bound token works with its certificate and is refused with another', async () => {
  const acme = clients.partner('acme');
  const { status: code, body } = await clients.clientCredentials(
    { client_id: 'acme-backend-mtls' },
    acme,
  );
  expect(code).toBe(200);
  const token = body.access_token as string;
  const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as {
    cnf?: Record<string, string>;
  };
  expect(claims.cnf?.['x5t#S256']).toBeTruthy();

  const ok = await infer(token, 'iris', [6.7, 3.0, 5.2, 2.3], acme);
  expect(ok.outputs.find((o) => o.name === 'label')?.contents?.int64Contents.map(Number)).toEqual([
    2,
  ]);
  const stolen = infer(token, 'iris', [6.7, 3.0, 5.2, 2.3], clients.partner('globex'));
  await expect(stolen).rejects.toMatchObject({ code: status.UNAUTHENTICATED });
  const bare = infer(token, 'iris', [6.7, 3.0, 5.2, 2.3]);
  await expect(bare).rejects.toMatchObject({
    code: status.UNAUTHENTICATED,
  } as Partial<ServiceError>);
}, 30_000);

test('a person logs in with `bulwark login`, then `bulwark token` + `bulwark infer` as printed', async () => {
  // The environment the summary tells people to export, plus a private session file.
  const env = cleanEnv({
    BULWARK_CA_FILE: join(certs(), 'ca.crt'),
    BULWARK_ISSUER: `https://127.0.0.1:${mesh.base}`,
    BULWARK_TOKEN_FILE: join(mesh.dir, 'session.json'),
  });
  expect(mesh.run.out()).toContain(
    `export BULWARK_CA_FILE=${env.BULWARK_CA_FILE} BULWARK_ISSUER=${env.BULWARK_ISSUER}`,
  );
  const login = runBulwark(['login', '--org', 'acme', '--poll-interval', '1'], env);
  await until('the device code', () => /confirm the code: \S+/.test(login.out()), 20_000);
  const verificationUri = /Open (\S+)/.exec(login.out())![1]!;
  const userCode = /confirm the code: (\S+)/.exec(login.out())![1]!;
  await approveDeviceLogin({
    ca: clients.ca,
    verificationUri,
    userCode,
    email: 'alice@acme.example',
    password: readFileSync(join(mesh.stateDir, 'secrets', 'demo-password'), 'utf8').trim(),
  });
  expect(await login.exited).toBe(0);

  const token = runBulwark(['token'], env);
  expect(await token.exited).toBe(0);
  const jwt = token.out().trim();
  const claims = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as {
    sub: string;
    org: string;
  };
  expect(claims).toMatchObject({ sub: 'acme/u-1001', org: 'acme' });

  const inferRun = runBulwark(
    [
      'infer',
      '--address',
      `127.0.0.1:${mesh.base + 3}`,
      '--model',
      'iris',
      '--input',
      '[[5.1,3.5,1.4,0.2]]',
      '--token',
      jwt,
    ],
    env,
  );
  expect(await inferRun.exited).toBe(0);
  const answer = JSON.parse(inferRun.out()) as {
    outputs: { label: { data: (number | string)[] } };
    parameters: Record<string, unknown>;
  };
  expect(answer.outputs.label.data.map(Number)).toEqual([0]);
  expect(answer.parameters['bulwark.audit.leaf_index']).toEqual(expect.any(Number));
}, 60_000);

test('token exchange: a partner IdP token becomes a certificate-bound mesh token', async () => {
  const exchange = async (subject: string) =>
    clients.clientCredentials(
      {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        client_id: 'acme-backend-mtls',
        subject_token: subject,
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      },
      clients.partner('acme'),
    );
  const acmeIdp = mesh.base + 20;
  const { status: code, body } = await exchange(
    await clients.partnerIdpToken('acme', acmeIdp, 'urn:bulwark:identity'),
  );
  expect(code).toBe(200);
  const token = body.access_token as string;
  const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as {
    sub: string;
    roles?: string[];
    cnf?: Record<string, string>;
  };
  expect(claims.sub).toBe('acme/acme-backend');
  // bulwark.yaml maps the subject token's client_id acme-backend to analyst.
  expect(claims.roles).toEqual(['analyst']);
  expect(claims.cnf?.['x5t#S256']).toBeTruthy();

  const row = [6.7, 3.0, 5.2, 2.3];
  // With its own certificate the token passes every check: transport, token, policy, audit.
  const ok = await infer(token, 'iris', row, clients.partner('acme'));
  expect(ok.outputs.find((o) => o.name === 'label')?.contents?.int64Contents.map(Number)).toEqual([
    2, // Iris virginica
  ]);
  expect(Number.isSafeInteger(Number(param(ok, 'bulwark.audit.leaf_index')))).toBe(true);
  // The same token presented with another partner's certificate is not accepted at all,
  // nor without a client certificate.
  await expect(infer(token, 'iris', row, clients.partner('globex'))).rejects.toMatchObject({
    code: status.UNAUTHENTICATED,
  });
  await expect(infer(token, 'iris', row)).rejects.toMatchObject({
    code: status.UNAUTHENTICATED,
  });
  // The broker's record of the exchange is in the audit log (who, for what; never the token).
  await until(
    'the token exchange record in the audit log',
    async () => {
      const run = runBulwark([
        'audit',
        'tail',
        '-n',
        '100',
        '--sqlite',
        join(mesh.stateDir, 'audit.sqlite'),
      ]);
      await run.exited;
      return (
        !run.out().includes(token) &&
        run
          .out()
          .split('\n')
          .some(
            (l) =>
              l.includes('"service":"identity"') &&
              l.includes('token.exchange') &&
              l.includes('acme/acme-backend'),
          )
      );
    },
    10_000,
  );
  // A partner token minted for another audience is not exchanged.
  const payroll = await exchange(
    await clients.partnerIdpToken('acme', acmeIdp, 'urn:acme:payroll'),
  );
  expect(payroll.status).toBe(400);
  expect(payroll.body.error).toBe('invalid_grant');
}, 30_000);
