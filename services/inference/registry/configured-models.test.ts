import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { writeBundleDir } from '../bundle/bundle-files.ts';
import { generateSignerKey, loadTrustedKey } from '../bundle/signing.ts';
import { signedIrisFiles } from '../bundle/testing.ts';
import { bundleDirsOf, registerConfiguredModels } from './configured-models.ts';
import { createModelRegistry } from './model-registry.ts';

const key = generateSignerKey();
const trustedKeys = [loadTrustedKey(key.publicKeyPem)];
const logger = pino({ level: 'silent' });
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'bulwark-configured-'));
  // A folder of versions, as the launcher writes it; 10 sorts after 2.
  for (const version of ['1', '2', '10'])
    await writeBundleDir(
      path.join(dir, 'src', 'iris', version),
      signedIrisFiles(key.privateKeyPem, { version }),
    );
});
afterEach(() => rm(dir, { recursive: true, force: true }));

test('a bundleDir is one bundle or a folder of versions, oldest first', async () => {
  expect(bundleDirsOf(path.join(dir, 'src', 'iris')).map((d) => path.basename(d))).toEqual([
    '1',
    '2',
    '10',
  ]);
  expect(bundleDirsOf(path.join(dir, 'src', 'iris', '2'))).toEqual([
    path.join(dir, 'src', 'iris', '2'),
  ]);
  expect(bundleDirsOf(path.join(dir, 'nowhere'))).toEqual([]);
});

test('registers every signed version and promotes the newest; routing state is kept on restart', async () => {
  const models = path.join(dir, 'models');
  const bad = path.join(dir, 'src', 'iris', '11');
  await writeBundleDir(bad, signedIrisFiles(generateSignerKey().privateKeyPem, { version: '11' }));
  const first = createModelRegistry({ trustedKeys, modelDir: models });
  const wanted = [{ name: 'iris', bundleDir: path.join(dir, 'src', 'iris'), riskTier: 'low' }];
  expect(await registerConfiguredModels(first, wanted, logger)).toEqual([
    { name: 'iris', version: '1' },
    { name: 'iris', version: '2' },
    { name: 'iris', version: '10' },
  ]);
  // Version 11 is signed by an untrusted key: refused, the others still served.
  expect(first.get('iris')).toMatchObject({ stable: '10', previousStable: '1' });
  // An admin rolls back to 2; a restart with a new version in the folder keeps that choice.
  await first.apply('iris', { stable: '2', canary: '', canaryPercent: 0, previousStable: '' });
  await first.close();
  await rm(bad, { recursive: true });
  await writeBundleDir(
    path.join(dir, 'src', 'iris', '12'),
    signedIrisFiles(key.privateKeyPem, { version: '12' }),
  );
  const second = createModelRegistry({ trustedKeys, modelDir: models });
  await second.loadStored();
  expect(await registerConfiguredModels(second, wanted, logger)).toEqual([
    { name: 'iris', version: '12' },
  ]);
  expect(second.get('iris')).toMatchObject({ stable: '2' });
  expect(
    second
      .get('iris')!
      .versions.map((v) => v.version)
      .sort(),
  ).toEqual(['1', '10', '12', '2']);
  await second.close();
});

test('a wrong name or risk tier and an empty folder are refused without stopping the rest', async () => {
  const registry = createModelRegistry({ trustedKeys });
  await writeFile(path.join(dir, 'empty-marker'), '');
  const done = await registerConfiguredModels(
    registry,
    [
      { name: 'credit', bundleDir: path.join(dir, 'src', 'iris', '1') },
      { name: 'iris', bundleDir: path.join(dir, 'src', 'iris', '1'), riskTier: 'high' },
      { name: 'iris', bundleDir: dir },
      { name: 'iris', bundleDir: path.join(dir, 'src', 'iris', '2') },
    ],
    logger,
  );
  expect(done).toEqual([{ name: 'iris', version: '2' }]);
  await registry.close();
});
