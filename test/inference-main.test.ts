/**
 * The inference service as a process (`services/inference/main.ts --demo`): it trains, signs and
 * loads the demo models, serves over TLS, and fails closed while policy and audit are absent.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  GRPCInferenceServiceClient,
  type ModelInferResponse,
  type ServerReadyResponse,
} from '../gen/inference/grpc_service.ts';
import { createTestPki, spiffeIdOf, type TestPki } from '../mesh/ca/index.ts';
import { createTestIssuer } from '../services/policy/testing.ts';
import { emptyContents } from '../services/inference/tensor/codec.ts';

let dir: string;
let pki: TestPki;
let child: ChildProcess;
let client: GRPCInferenceServiceClient;
let logs = '';
let mint: (claims: Record<string, unknown>) => Promise<string>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulwark-inference-main-'));
  pki = await createTestPki({ dir: join(dir, 'certs'), services: ['inference'] });
  const idp = await createTestIssuer();
  await writeFile(join(dir, 'jwks.json'), JSON.stringify({ keys: [idp.publicJwk] }));
  await writeFile(
    join(dir, 'bulwark.yaml'),
    `version: 1\nstateDir: ${join(dir, 'state')}\nservices:\n  policy:\n    port: 1\n  audit:\n    port: 2\n`,
  );
  child = spawn(
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
      '--jwks-file',
      join(dir, 'jwks.json'),
      '--demo',
      '--no-metrics',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready:\n${logs}`)), 50_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      logs += chunk.toString();
      const m = /"address":"([^"]+)"[^\n]*"msg":"inference service ready"/.exec(logs);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (logs += chunk.toString()));
    child.on('exit', (code) => reject(new Error(`exited ${code}:\n${logs}`)));
  });
  client = new GRPCInferenceServiceClient(
    address,
    grpc.credentials.createSsl(Buffer.from(pki.caPem), null, null, {
      checkServerIdentity: (_h, peer) =>
        spiffeIdOf(peer) === pki.services.inference!.spiffeId
          ? undefined
          : new Error('wrong server'),
    }),
    { 'grpc.ssl_target_name_override': 'localhost' },
  );
  mint = (claims) => idp.mint(claims);
}, 60_000);

afterAll(async () => {
  client?.close();
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  await pki?.cleanup();
  await rm(dir, { recursive: true, force: true });
});

test('serves the demo models it built and refuses to answer while policy is unreachable', async () => {
  const ready = await new Promise<ServerReadyResponse>((resolve, reject) =>
    client.serverReady({}, (e, r) => (e ? reject(e) : resolve(r))),
  );
  expect(ready.ready).toBe(true);
  expect(logs).toMatch(/"models":\["credit@1","iris@1"\]/);
  const md = new grpc.Metadata();
  md.set(
    'authorization',
    `Bearer ${await mint({ sub: 'acme/bob', org: 'acme', roles: ['analyst'] })}`,
  );
  const err = await new Promise<grpc.ServiceError>((resolve, reject) =>
    client.modelInfer(
      {
        modelName: 'iris',
        modelVersion: '',
        id: '',
        parameters: {},
        outputs: [],
        rawInputContents: [],
        inputs: [
          {
            name: 'input',
            datatype: 'FP32',
            shape: [1, 4],
            parameters: {},
            contents: { ...emptyContents(), fp32Contents: [5, 3, 1, 0.2] },
          },
        ],
      },
      md,
      { deadline: Date.now() + 10_000 },
      (e: grpc.ServiceError | null, r: ModelInferResponse) =>
        e ? resolve(e) : reject(new Error(`answered: ${JSON.stringify(r)}`)),
    ),
  );
  expect(err.code).toBe(grpc.status.UNAVAILABLE);
  expect(err.details).toBe('policy service unavailable');
});
