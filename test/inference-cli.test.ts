/**
 * `bulwark model keygen|sign|verify|register|list|canary|promote|rollback` and `bulwark infer`,
 * run in-process against a real inference stack.
 */
import { spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { main } from '../cli/main.ts';
import { ExitCode } from '../cli/exit-codes.ts';
import { startInferenceStack, type InferenceStack } from '../services/inference/testing.ts';

let stack: InferenceStack;
let work: string;

beforeAll(async () => {
  stack = await startInferenceStack();
  work = await mkdtemp(path.join(tmpdir(), 'bulwark-model-cli-'));
}, 60_000);
afterAll(async () => {
  await stack?.close();
  await rm(work, { recursive: true, force: true });
});

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['node', 'bulwark', ...args], {
    out: (t) => (out += t),
    err: (t) => (err += t),
  });
  return { code, out, err };
}

test('keygen, sign and verify a bundle; a flipped byte fails verification with exit 3', async () => {
  const keygen = await run('model', 'keygen', '--out', work);
  expect(keygen.code).toBe(ExitCode.OK);
  expect((await stat(path.join(work, 'signer.key'))).mode & 0o777).toBe(0o600);
  expect((await run('model', 'keygen', '--out', work)).err).toMatch(/refusing to overwrite/);
  const bundle = path.join(work, 'iris', '9');
  await cp(path.join(stack.demoDir, 'iris', '1'), bundle, { recursive: true });
  const manifest = JSON.parse(await readFile(path.join(bundle, 'manifest.json'), 'utf8'));
  await writeFile(
    path.join(bundle, 'manifest.json'),
    JSON.stringify({ ...manifest, version: '9', files: {} }),
  );
  await rm(path.join(bundle, 'manifest.sig'));
  expect((await run('model', 'sign', bundle, '--key', path.join(work, 'signer.key'))).code).toBe(
    ExitCode.OK,
  );
  const ok = await run('model', 'verify', bundle, '--trust', path.join(work, 'signer.pub'));
  expect(ok.code).toBe(ExitCode.OK);
  expect(ok.out).toMatch(/^ok iris@9 sha256:[0-9a-f]{64} signed by [0-9a-f]{32}\n$/);
  const other = path.join(work, 'other');
  await mkdir(other);
  await run('model', 'keygen', '--out', other);
  const wrongKey = await run('model', 'verify', bundle, '--trust', path.join(other, 'signer.pub'));
  expect(wrongKey.code).toBe(ExitCode.CHECK_FAILED);
  const model = await readFile(path.join(bundle, 'model.onnx'));
  model.writeUInt8(model.readUInt8(50) ^ 1, 50);
  await writeFile(path.join(bundle, 'model.onnx'), model);
  const bad = await run('model', 'verify', bundle, '--trust', path.join(work, 'signer.pub'));
  expect(bad.code).toBe(ExitCode.CHECK_FAILED);
  expect(bad.err).toBe(
    'bulwark: bundle refused: SHA-256 of model.onnx does not match the manifest\n',
  );
});

test('register, canary, promote, rollback and infer against the service', async () => {
  const conn = ['--address', stack.address, '--ca', stack.pki.caFile];
  const adminToken = await stack.idp.mint({ sub: 'acme/ops', org: 'acme', scope: 'model:admin' });
  const reg = await run(
    'model',
    'register',
    path.join(stack.demoDir, 'iris', '2'),
    ...conn,
    '--token',
    adminToken,
  );
  expect(reg).toMatchObject({ code: ExitCode.OK });
  expect(reg.out).toMatch(/iris: stable 1\n/);
  expect(
    (await run('model', 'canary', 'iris', '2', '--percent', '30', ...conn, '--token', adminToken))
      .out,
  ).toMatch(/canary 2 at 30%/);
  expect((await run('model', 'promote', 'iris', ...conn, '--token', adminToken)).out).toMatch(
    /iris: stable 2, previous 1/,
  );
  expect((await run('model', 'rollback', 'iris', ...conn, '--token', adminToken)).out).toMatch(
    /iris: stable 1\n/,
  );
  expect((await run('model', 'list', ...conn, '--token', adminToken)).out).toMatch(
    /credit: stable 1[\s\S]*iris: stable 1/,
  );

  const userToken = await stack.idp.mint({ sub: 'acme/bob', org: 'acme', roles: ['analyst'] });
  const infer = await run(
    'infer',
    '--model',
    'iris',
    '--input',
    '[[5.1,3.5,1.4,0.2]]',
    ...conn,
    '--token',
    userToken,
  );
  expect(infer.code).toBe(ExitCode.OK);
  const result = JSON.parse(infer.out);
  expect(result.outputs.label.data).toEqual([0]);
  expect(result.parameters['bulwark.audit.log_id']).toBe('bulwark.local/audit');
  expect(typeof result.parameters['bulwark.audit.leaf_index']).toBe('number');

  const denied = await run(
    'infer',
    '--model',
    'iris',
    '--input',
    '[[5.1,3.5,1.4,99]]',
    ...conn,
    '--token',
    userToken,
  );
  expect(denied.code).toBe(ExitCode.USAGE);
  expect(denied.err).toMatch(/outside the allowed range/);
  const noToken = await run('infer', '--model', 'iris', '--input', '[1,2,3,4]', ...conn);
  expect(noToken.code).toBe(process.env.BULWARK_TOKEN ? ExitCode.FAILURE : ExitCode.USAGE);
});

test('bulwark infer says what is wrong with each bad input', async () => {
  const conn = ['--address', stack.address, '--ca', stack.pki.caFile];
  const token = await stack.idp.mint({ sub: 'acme/bob', org: 'acme', roles: ['analyst'] });
  const infer = (model: string, input: string) =>
    run('infer', '--model', model, '--input', input, ...conn, '--token', token);
  const badJson = await infer('iris', '[[5.1,3.5');
  expect(badJson.code).toBe(ExitCode.USAGE);
  expect(badJson.err).toMatch(/^bulwark: --input is not JSON \(.+\); expected rows of numbers/);
  for (const shape of ['{"a":1}', '[]', '[[]]', '[["5.1"]]', '[[1,2],3]']) {
    const res = await infer('iris', shape);
    expect(res.code).toBe(ExitCode.USAGE);
    expect(res.err).toMatch(/--input must be a non-empty row \[\.\.\] or list of rows/);
  }
  const ragged = await infer('iris', '[[1,2,3,4],[1,2,3]]');
  expect(ragged).toMatchObject({ code: ExitCode.USAGE });
  expect(ragged.err).toMatch(/rows differ in length \(4, 3\)/);
  const narrow = await infer('iris', '[1,2,3]');
  expect(narrow.code).toBe(ExitCode.USAGE);
  expect(narrow.err).toBe(
    'bulwark: model iris takes rows of 4 numbers (input "input"), --input rows have 3\n',
  );
  const unknown = await infer('nope', '[1,2,3,4]');
  expect(unknown.code).toBe(ExitCode.FAILURE);
  expect(unknown.err).toBe('bulwark: model nope is not registered\n');
  const noCa = await run(
    'infer',
    '--model',
    'iris',
    '--input',
    '[1,2,3,4]',
    '--address',
    stack.address,
    '--ca',
    path.join(work, 'missing-ca.crt'),
    '--token',
    token,
  );
  expect(noCa.code).toBe(ExitCode.USAGE);
  expect(noCa.err).toMatch(/missing-ca\.crt: no such file/);
});

test('bulwark infer finds the inference service and CA from bulwark.yaml, without DEP0123', async () => {
  const state = path.join(work, 'state');
  await mkdir(path.join(state, 'certs'), { recursive: true });
  await cp(stack.pki.caFile, path.join(state, 'certs', 'ca.crt'));
  const port = Number(stack.address.split(':').at(-1));
  const config = path.join(work, 'bulwark.yaml');
  await writeFile(
    config,
    `version: 1\nstateDir: ${state}\nservices:\n  inference:\n    host: 127.0.0.1\n    port: ${port}\n`,
  );
  const token = await stack.idp.mint({ sub: 'acme/bob', org: 'acme', roles: ['analyst'] });
  const env: Record<string, string | undefined> = { ...process.env, BULWARK_TOKEN: token };
  delete env.BULWARK_CA_FILE;
  delete env.BULWARK_INFERENCE_ADDRESS;
  // A separate process: Node prints a deprecation warning once per process, so only a fresh
  // one shows whether connecting to 127.0.0.1 triggers it.
  const child = spawn(
    process.execPath,
    [
      'bin/bulwark.js',
      'infer',
      '--config',
      config,
      '--model',
      'iris',
      '--input',
      '[[5.1,3.5,1.4,0.2]]',
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  expect({ code, err }).toEqual({ code: 0, err: '' });
  expect(JSON.parse(out).outputs.label.data).toEqual([0]);
  // Without a CA file in the state directory the error says where it looked.
  await rm(path.join(state, 'certs', 'ca.crt'));
  const missing = await run(
    'infer',
    '--config',
    config,
    '--model',
    'iris',
    '--input',
    '[1,2,3,4]',
    '--token',
    token,
  );
  if (!process.env.BULWARK_CA_FILE) {
    expect(missing.code).toBe(ExitCode.USAGE);
    expect(missing.err).toContain(`no CA: ${path.join(state, 'certs', 'ca.crt')} does not exist`);
  }
}, 30_000);
