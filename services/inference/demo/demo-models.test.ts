import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ort } from '../runtime/ort.ts';
import { buildDemoBundles, type DemoBundle } from './build.ts';
import { generateSignerKey, loadTrustedKey } from '../bundle/signing.ts';
import { readBundleDir } from '../bundle/bundle-files.ts';
import { verifyBundleFiles } from '../bundle/verify.ts';
import { predictProba } from './train.ts';

let dir: string;
let bundles: DemoBundle[];
const key = generateSignerKey();

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'bulwark-demo-'));
  bundles = await buildDemoBundles({ outDir: dir, privateKeyPem: key.privateKeyPem });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function onnxAccuracy(bundle: DemoBundle): Promise<{ acc: number; maxDiff: number }> {
  const verified = verifyBundleFiles(await readBundleDir(bundle.dir), {
    trustedKeys: [loadTrustedKey(key.publicKeyPem)],
    expect: { name: bundle.name, version: bundle.version },
  });
  const session = await ort.InferenceSession.create(verified.model);
  try {
    const { xs, ys } = bundle.dataset.test;
    const features = xs[0]!.length;
    const out = await session.run({
      input: new ort.Tensor('float32', Float32Array.from(xs.flat()), [xs.length, features]),
    });
    const labels = out['label']!.data as BigInt64Array;
    const probs = out['probabilities']!.data as Float32Array;
    let correct = 0;
    let maxDiff = 0;
    xs.forEach((x, i) => {
      if (Number(labels[i]) === ys[i]) correct++;
      const expected = predictProba(bundle.model, x);
      expected.forEach((p, c) => {
        maxDiff = Math.max(maxDiff, Math.abs(p - probs[i * expected.length + c]!));
      });
    });
    return { acc: correct / xs.length, maxDiff };
  } finally {
    await session.release();
  }
}

test('builds iris v1, iris v2 and credit as signed bundles', () => {
  expect(bundles.map((b) => `${b.name}@${b.version}`)).toEqual(['iris@1', 'iris@2', 'credit@1']);
});

test('the iris model exported to ONNX classifies held-out flowers under onnxruntime', async () => {
  for (const bundle of bundles.filter((b) => b.name === 'iris')) {
    const { acc, maxDiff } = await onnxAccuracy(bundle);
    expect(acc).toBeGreaterThanOrEqual(0.9);
    // The ONNX graph computes what the trainer computes (FP32 vs FP64 only).
    expect(maxDiff).toBeLessThan(1e-4);
  }
});

test('the credit model exported to ONNX scores held-out applicants under onnxruntime', async () => {
  const credit = bundles.find((b) => b.name === 'credit')!;
  const { acc, maxDiff } = await onnxAccuracy(credit);
  expect(acc).toBeGreaterThanOrEqual(0.9);
  expect(maxDiff).toBeLessThan(1e-4);
});

test('the same seed gives byte-identical models', async () => {
  const again = await mkdtemp(path.join(tmpdir(), 'bulwark-demo-'));
  try {
    await buildDemoBundles({ outDir: again, privateKeyPem: key.privateKeyPem });
    const a = await readBundleDir(path.join(dir, 'credit', '1'));
    const b = await readBundleDir(path.join(again, 'credit', '1'));
    expect(Buffer.from(a.get('model.onnx')!).equals(Buffer.from(b.get('model.onnx')!))).toBe(true);
  } finally {
    await rm(again, { recursive: true, force: true });
  }
});
