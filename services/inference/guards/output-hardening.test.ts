import { errorCode } from '../../../mesh/errors.ts';
import { parseManifest } from '../bundle/manifest.ts';
import { irisTestManifest } from '../bundle/testing.ts';
import { createRng } from '../demo/train.ts';
import type { Tensor } from '../tensor/codec.ts';
import { createOutputHardener } from './output-hardening.ts';

function manifest(outputPolicy: Record<string, unknown>) {
  return parseManifest({
    ...irisTestManifest(),
    files: { 'model.onnx': '0'.repeat(64) },
    outputPolicy,
  });
}

function results(): Tensor[] {
  return [
    {
      name: 'probabilities',
      datatype: 'FP32',
      shape: [2, 3],
      data: Float32Array.from([0.71234, 0.2, 0.08766, 0.1, 0.3, 0.6]),
    },
    { name: 'label', datatype: 'INT64', shape: [2], data: BigInt64Array.from([0n, 2n]) },
  ];
}

const both = ['probabilities', 'label'];

test('top-k keeps the k largest scores per row and rounding trims digits', () => {
  const h = createOutputHardener();
  const { outputs } = h.harden(manifest({ topK: 1, roundDigits: 2 }), results(), both, 'c');
  expect(Array.from(outputs[0]!.data as Float32Array).map((v) => +v.toFixed(6))).toEqual([
    0.71, 0, 0, 0, 0, 0.6,
  ]);
  expect(outputs[1]!.data).toEqual(BigInt64Array.from([0n, 2n]));
});

test('label-only drops scores and refuses a request for scores alone', () => {
  const h = createOutputHardener();
  const { outputs } = h.harden(manifest({ labelOnly: true }), results(), both, 'c');
  expect(outputs.map((o) => o.name)).toEqual(['label']);
  expect(() => h.harden(manifest({ labelOnly: true }), results(), ['probabilities'], 'c')).toThrow(
    'output "probabilities" is withheld: model iris answers with labels only',
  );
});

test('Laplace noise changes scores, keeps rows normalised and charges the client ε until the budget is gone', () => {
  let t = Date.parse('2026-05-01T10:00:00Z');
  const h = createOutputHardener({ random: createRng(3), now: () => t });
  const m = manifest({ laplace: { epsilonPerQuery: 0.5, sensitivity: 1, budgetPerClient: 2 } });
  const first = h.harden(m, results(), both, 'acme/alice');
  expect(first.privacy).toEqual({ epsilon: 1, spent: 1, remaining: 1 });
  const probs = Array.from(first.outputs[0]!.data as Float32Array);
  expect(probs).not.toEqual(Array.from(results()[0]!.data as Float32Array));
  expect(probs.slice(0, 3).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  const labels = first.outputs[1]!.data as BigInt64Array;
  expect(Number(labels[0])).toBe(probs.slice(0, 3).indexOf(Math.max(...probs.slice(0, 3))));
  expect(h.harden(m, results(), both, 'acme/alice').privacy?.remaining).toBe(0);
  try {
    h.harden(m, results(), both, 'acme/alice');
    throw new Error('expected refusal');
  } catch (err) {
    expect(errorCode(err)).toBe('ERR_INFERENCE_PRIVACY_BUDGET_EXHAUSTED');
    expect((err as Error).message).toMatch(/ε 2.00 of 2 spent today; this request needs 1.00/);
  }
  // Another client has its own budget; the next UTC day starts afresh.
  expect(h.harden(m, results(), both, 'acme/bob').privacy?.spent).toBe(1);
  t += 86_400_000;
  expect(h.harden(m, results(), both, 'acme/alice').privacy?.spent).toBe(1);
});

test('the model results handed in are never modified', () => {
  const h = createOutputHardener({ random: createRng(1) });
  const input = results();
  h.harden(
    manifest({ topK: 1, roundDigits: 1, laplace: { epsilonPerQuery: 1, budgetPerClient: 10 } }),
    input,
    both,
    'c',
  );
  expect(Array.from(input[0]!.data as Float32Array)[0]).toBeCloseTo(0.71234, 5);
});
