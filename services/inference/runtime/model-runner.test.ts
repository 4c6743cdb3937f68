import { errorCode } from '../../../mesh/errors.ts';
import { generateSignerKey, loadTrustedKey } from '../bundle/signing.ts';
import { signedIrisFiles } from '../bundle/testing.ts';
import { verifyBundleFiles } from '../bundle/verify.ts';
import { createModelRunner, type ModelRunner } from './model-runner.ts';
import { ort } from './ort.ts';

const key = generateSignerKey();
const bundle = verifyBundleFiles(signedIrisFiles(key.privateKeyPem), {
  trustedKeys: [loadTrustedKey(key.publicKeyPem)],
});
const feeds = () => ({
  input: new ort.Tensor('float32', Float32Array.from([5.1, 3.5, 1.4, 0.2]), [1, 4]),
});
let runner: ModelRunner;

afterEach(() => runner?.release());

test('runs the verified bytes', async () => {
  runner = await createModelRunner(bundle);
  const out = await runner.run(feeds(), Date.now() + 5000);
  expect(Number((out['label']!.data as BigInt64Array)[0])).toBe(0);
});

test('a call whose deadline has passed is DEADLINE_EXCEEDED before it runs', async () => {
  runner = await createModelRunner(bundle);
  const now = 1000;
  await expect(runner.run(feeds(), 999, () => now)).rejects.toMatchObject({
    code: 'ERR_INFERENCE_DEADLINE_EXCEEDED',
  });
});

test('beyond the concurrency limit and queue, calls are refused with UNAVAILABLE', async () => {
  runner = await createModelRunner(bundle, { maxConcurrent: 1, maxQueue: 1 });
  const calls = Array.from({ length: 4 }, () =>
    runner.run(feeds(), Date.now() + 5000).then(
      () => 'ok',
      (err: unknown) => errorCode(err),
    ),
  );
  const results = await Promise.all(calls);
  expect(results.filter((r) => r === 'ok')).toHaveLength(2);
  expect(results.filter((r) => r === 'ERR_INFERENCE_MODEL_UNAVAILABLE')).toHaveLength(2);
});
