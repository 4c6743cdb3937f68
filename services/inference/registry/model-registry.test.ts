import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { errorCode } from '../../../mesh/errors.ts';
import { generateSignerKey, loadTrustedKey } from '../bundle/signing.ts';
import { signedIrisFiles } from '../bundle/testing.ts';
import { canaryBucket, createModelRegistry, type ModelRegistry } from './model-registry.ts';

const key = generateSignerKey();
const trustedKeys = [loadTrustedKey(key.publicKeyPem)];
let dir: string;
let registry: ModelRegistry;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'bulwark-registry-'));
  registry = createModelRegistry({ trustedKeys, modelDir: dir });
  for (const version of ['1', '2']) {
    await registry.commit(
      await registry.prepare(signedIrisFiles(key.privateKeyPem, { version })),
      false,
    );
  }
});
afterAll(async () => {
  await registry.close();
  await rm(dir, { recursive: true, force: true });
});

const subjects = Array.from({ length: 400 }, (_, i) => `acme/user-${i}`);
const versionFor = (s: string) => registry.resolve('iris', '', s).bundle.manifest.version;

test('the first version becomes stable; an explicit version is honoured; unknown ones are NOT_FOUND', () => {
  expect(registry.get('iris')).toMatchObject({ stable: '1', canary: '', canaryPercent: 0 });
  expect(registry.resolve('iris', '2', 'acme/a').bundle.manifest.version).toBe('2');
  expect(() => registry.resolve('iris', '9', 'acme/a')).toThrow('model iris has no version 9');
  expect(() => registry.resolve('nope', '', 'acme/a')).toThrow('model nope is not registered');
  try {
    registry.resolve('../iris', '', 'acme/a');
  } catch (err) {
    expect(errorCode(err)).toBe('ERR_INFERENCE_INVALID_INPUT');
  }
  expect.assertions(5);
});

test('canary traffic is weighted and sticky per subject; promote and rollback switch at once', async () => {
  await registry.apply(
    'iris',
    registry.plan('iris', { kind: 'canary', version: '2', percent: 25 }),
  );
  const onCanary = subjects.filter((s) => versionFor(s) === '2');
  expect(onCanary.length).toBeGreaterThan(60);
  expect(onCanary.length).toBeLessThan(140);
  expect(onCanary.every((s) => canaryBucket(s, 'iris') < 25)).toBe(true);
  // Sticky: asking again gives the same answer.
  expect(subjects.filter((s) => versionFor(s) === '2')).toEqual(onCanary);
  await registry.apply('iris', registry.plan('iris', { kind: 'promote', version: '' }));
  expect(registry.get('iris')).toMatchObject({ stable: '2', canary: '', previousStable: '1' });
  expect(subjects.every((s) => versionFor(s) === '2')).toBe(true);
  await registry.apply('iris', registry.plan('iris', { kind: 'rollback' }));
  expect(registry.get('iris')).toMatchObject({ stable: '1', previousStable: '' });
  expect(subjects.every((s) => versionFor(s) === '1')).toBe(true);
  expect(() => registry.plan('iris', { kind: 'rollback' })).toThrow(
    'model iris has no previous version to roll back to',
  );
  expect(() => registry.plan('iris', { kind: 'canary', version: '2', percent: 101 })).toThrow(
    /0 to 100/,
  );
});

test('a version cannot be registered twice', async () => {
  await expect(
    registry.prepare(signedIrisFiles(key.privateKeyPem, { version: '1' })),
  ).rejects.toThrow('model iris version 1 is already registered');
});

test('stored bundles and routing come back after a restart; a tampered stored bundle is not loaded', async () => {
  await registry.apply(
    'iris',
    registry.plan('iris', { kind: 'canary', version: '2', percent: 50 }),
  );
  const model = path.join(dir, 'iris', '2', 'model.onnx');
  const again = createModelRegistry({ trustedKeys, modelDir: dir });
  await again.loadStored();
  expect(again.get('iris')).toMatchObject({ stable: '1', canary: '2', canaryPercent: 50 });
  await again.close();
  const bytes = await readFile(model);
  bytes.writeUInt8(bytes.readUInt8(20) ^ 1, 20);
  await writeFile(model, bytes);
  const failures: string[] = [];
  const third = createModelRegistry({ trustedKeys, modelDir: dir });
  await third.loadStored((d, err) => failures.push(`${path.relative(dir, d)}: ${errorCode(err)}`));
  expect(failures).toEqual(['iris/2: ERR_BUNDLE_DIGEST']);
  expect(third.get('iris')).toMatchObject({ stable: '1', canary: '', canaryPercent: 0 });
  await third.close();
});
