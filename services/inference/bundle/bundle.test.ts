import { link, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { errorCode } from '../../../mesh/errors.ts';
import { InferenceError } from '../errors.ts';
import { readBundleDir, writeBundleDir } from './bundle-files.ts';
import { generateSignerKey, loadTrustedKey } from './signing.ts';
import {
  signedIrisFiles,
  withCustomDomainNode,
  withExternalData,
  withExternalDataInSubgraph,
  withFunctionNode,
  quickIrisOnnx,
} from './testing.ts';
import { verifyBundleFiles } from './verify.ts';

const publisher = generateSignerKey();
const stranger = generateSignerKey();
const trustedKeys = [loadTrustedKey(publisher.publicKeyPem)];
let root: string;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'bulwark-bundle-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));

function refusal(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InferenceError);
    return `${errorCode(err)}: ${(err as Error).message}`;
  }
  throw new Error('expected a refusal');
}

async function refusalAsync(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InferenceError);
    return `${errorCode(err)}: ${(err as Error).message}`;
  }
  throw new Error('expected a refusal');
}

test('a correctly signed bundle verifies, from memory and from disk', async () => {
  const files = signedIrisFiles(publisher.privateKeyPem);
  const bundle = verifyBundleFiles(files, { trustedKeys });
  expect(bundle.manifest.name).toBe('iris');
  expect(bundle.signerKeyId).toBe(publisher.keyId);
  expect(bundle.bundleSha256).toMatch(/^[0-9a-f]{64}$/);
  const dir = path.join(root, 'ok', 'iris', '1');
  await writeBundleDir(dir, files);
  const fromDisk = verifyBundleFiles(await readBundleDir(dir), {
    trustedKeys,
    expect: { name: 'iris', version: '1' },
  });
  expect(fromDisk.bundleSha256).toBe(bundle.bundleSha256);
});

test('refuses a model.onnx with one byte flipped', () => {
  const files = signedIrisFiles(publisher.privateKeyPem);
  const model = Buffer.from(files.get('model.onnx')!);
  const at = model.length - 10;
  model.writeUInt8(model.readUInt8(at) ^ 0x01, at);
  files.set('model.onnx', model);
  expect(refusal(() => verifyBundleFiles(files, { trustedKeys }))).toBe(
    'ERR_BUNDLE_DIGEST: SHA-256 of model.onnx does not match the manifest',
  );
});

test('refuses an unsigned bundle', () => {
  const files = signedIrisFiles(publisher.privateKeyPem);
  files.delete('manifest.sig');
  expect(refusal(() => verifyBundleFiles(files, { trustedKeys }))).toMatch(
    /^ERR_BUNDLE_SIGNATURE: bundle is unsigned/,
  );
});

test('refuses a bundle signed by a key that is not trusted', () => {
  const files = signedIrisFiles(stranger.privateKeyPem);
  expect(refusal(() => verifyBundleFiles(files, { trustedKeys }))).toBe(
    `ERR_BUNDLE_SIGNATURE: manifest is signed by untrusted key ${stranger.keyId}`,
  );
});

test('refuses a manifest edited after signing (e.g. risk tier lowered)', () => {
  const files = signedIrisFiles(publisher.privateKeyPem, { manifest: { riskTier: 'high' } });
  const edited = Buffer.from(files.get('manifest.json')!).toString().replace('"high"', '"low"');
  files.set('manifest.json', Buffer.from(edited));
  expect(refusal(() => verifyBundleFiles(files, { trustedKeys }))).toMatch(
    /^ERR_BUNDLE_SIGNATURE: manifest signature by key [0-9a-f]+ does not verify$/,
  );
});

test('refuses a forged signature file claiming the trusted key id', () => {
  const files = signedIrisFiles(stranger.privateKeyPem);
  const sig = JSON.parse(Buffer.from(files.get('manifest.sig')!).toString());
  files.set('manifest.sig', Buffer.from(JSON.stringify({ ...sig, keyId: publisher.keyId })));
  expect(refusal(() => verifyBundleFiles(files, { trustedKeys }))).toMatch(/does not verify/);
});

test('refuses signed ONNX whose tensor data points outside the bundle (CVE-2022-25882 style)', () => {
  const onnx = withExternalData(quickIrisOnnx(), '../../../../etc/passwd');
  const files = signedIrisFiles(publisher.privateKeyPem, { onnx });
  expect(refusal(() => verifyBundleFiles(files, { trustedKeys }))).toBe(
    'ERR_BUNDLE_EXTERNAL_DATA: model.onnx references external data outside the bundle ("../../../../etc/passwd")',
  );
  const absolute = signedIrisFiles(publisher.privateKeyPem, {
    onnx: withExternalData(quickIrisOnnx(), '/etc/shadow'),
  });
  expect(refusal(() => verifyBundleFiles(absolute, { trustedKeys }))).toMatch(/outside the bundle/);
});

test('refuses external data even when it names a file inside the bundle', () => {
  const files = signedIrisFiles(publisher.privateKeyPem, {
    onnx: withExternalData(quickIrisOnnx(), 'weights.bin'),
  });
  expect(refusal(() => verifyBundleFiles(files, { trustedKeys }))).toBe(
    'ERR_BUNDLE_EXTERNAL_DATA: model.onnx references external data; bundles must be self-contained',
  );
});

test('refuses operators from unknown domains unless the service allows the domain', () => {
  const files = signedIrisFiles(publisher.privateKeyPem, {
    onnx: withCustomDomainNode(quickIrisOnnx(), 'com.evil'),
  });
  expect(refusal(() => verifyBundleFiles(files, { trustedKeys }))).toBe(
    'ERR_BUNDLE_OPERATOR_DOMAIN: model.onnx uses operator domain "com.evil", which is not allowed',
  );
  expect(
    verifyBundleFiles(files, { trustedKeys, allowedOperatorDomains: ['com.evil'] }).manifest.name,
  ).toBe('iris');
});

test('finds external data hidden in an If subgraph and custom operators in a model-local function', () => {
  const nested = signedIrisFiles(publisher.privateKeyPem, {
    onnx: withExternalDataInSubgraph(quickIrisOnnx(), '../../secrets.bin'),
  });
  expect(refusal(() => verifyBundleFiles(nested, { trustedKeys }))).toBe(
    'ERR_BUNDLE_EXTERNAL_DATA: model.onnx references external data outside the bundle ("../../secrets.bin")',
  );
  const fn = signedIrisFiles(publisher.privateKeyPem, {
    onnx: withFunctionNode(quickIrisOnnx(), 'com.evil'),
  });
  expect(refusal(() => verifyBundleFiles(fn, { trustedKeys }))).toMatch(
    /^ERR_BUNDLE_OPERATOR_DOMAIN: model.onnx uses operator domain "com.evil"/,
  );
});

test('refuses bytes that are not ONNX', () => {
  const files = signedIrisFiles(publisher.privateKeyPem, { onnx: Buffer.from([0xff, 0xff, 0xff]) });
  expect(refusal(() => verifyBundleFiles(files, { trustedKeys }))).toMatch(
    /^ERR_BUNDLE_INVALID: model.onnx is not a valid ONNX model/,
  );
});

test('refuses "../" in the model name and in bundle file paths', () => {
  expect(
    refusal(() =>
      verifyBundleFiles(signedIrisFiles(publisher.privateKeyPem, { name: '../etc' }), {
        trustedKeys,
      }),
    ),
  ).toMatch(/^ERR_BUNDLE_INVALID: manifest.name: /);
  const files = signedIrisFiles(publisher.privateKeyPem);
  files.set('../model.onnx', quickIrisOnnx());
  expect(refusal(() => verifyBundleFiles(files, { trustedKeys }))).toMatch(
    /^ERR_BUNDLE_UNSAFE_PATH: /,
  );
  const nested = signedIrisFiles(publisher.privateKeyPem);
  nested.set('sub/evil.onnx', quickIrisOnnx());
  expect(refusal(() => verifyBundleFiles(nested, { trustedKeys }))).toMatch(
    /^ERR_BUNDLE_UNSAFE_PATH: /,
  );
});

test('refuses an unlisted extra file and a bundle filed under another name', () => {
  const files = signedIrisFiles(publisher.privateKeyPem);
  files.set('payload.py', Buffer.from('import os'));
  expect(refusal(() => verifyBundleFiles(files, { trustedKeys }))).toBe(
    'ERR_BUNDLE_DIGEST: file payload.py is not listed in the manifest',
  );
  const other = signedIrisFiles(publisher.privateKeyPem, { version: '2' });
  expect(
    refusal(() =>
      verifyBundleFiles(other, { trustedKeys, expect: { name: 'iris', version: '1' } }),
    ),
  ).toBe('ERR_BUNDLE_INVALID: bundle at iris/1 declares iris/2');
});

test('refuses a symlinked model file, even when the target has the right bytes', async () => {
  const files = signedIrisFiles(publisher.privateKeyPem);
  const dir = path.join(root, 'symlink', 'iris', '1');
  const outside = path.join(root, 'symlink-target.onnx');
  await writeFile(outside, files.get('model.onnx')!);
  files.delete('model.onnx');
  await writeBundleDir(dir, files);
  await symlink(outside, path.join(dir, 'model.onnx'));
  expect(await refusalAsync(() => readBundleDir(dir))).toBe(
    'ERR_BUNDLE_UNSAFE_PATH: bundle file model.onnx is a symlink',
  );
});

test('refuses a hard-linked model file', async () => {
  const files = signedIrisFiles(publisher.privateKeyPem);
  const dir = path.join(root, 'hardlink', 'iris', '1');
  const outside = path.join(root, 'hardlink-target.onnx');
  await writeFile(outside, files.get('model.onnx')!);
  files.delete('model.onnx');
  await writeBundleDir(dir, files);
  await link(outside, path.join(dir, 'model.onnx'));
  expect(await refusalAsync(() => readBundleDir(dir))).toMatch(
    /^ERR_BUNDLE_UNSAFE_PATH: bundle file model.onnx is hard-linked/,
  );
});

test('refuses a symlinked bundle directory and a subdirectory inside a bundle', async () => {
  const real = path.join(root, 'real', 'iris', '1');
  await writeBundleDir(real, signedIrisFiles(publisher.privateKeyPem));
  await mkdir(path.join(root, 'linked', 'iris'), { recursive: true });
  await symlink(real, path.join(root, 'linked', 'iris', '1'));
  expect(await refusalAsync(() => readBundleDir(path.join(root, 'linked', 'iris', '1')))).toMatch(
    /is not a plain directory$/,
  );
  await mkdir(path.join(real, 'extra'));
  expect(await refusalAsync(() => readBundleDir(real))).toBe(
    'ERR_BUNDLE_UNSAFE_PATH: bundle entry extra is not a regular file',
  );
});
