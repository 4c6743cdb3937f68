/**
 * Builds Bulwark's demo models from scratch: trains them in-process, exports ONNX, writes a
 * manifest and signs it. Nothing is downloaded; the same seed gives the same bundles.
 *
 * - `iris` (risk tier low): Iris species from four measurements, versions 1 and 2 (v2 trains
 *   longer; used to show canary traffic).
 * - `credit` (risk tier high): synthetic credit approval; label-only answers plus Laplace
 *   noise on probabilities when they are requested by policy.
 *
 * Run: `node services/inference/demo/build.ts <out-dir> [signer.key]` (a new key is generated
 * and written next to the bundles when none is given).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { writeBundleDir, signBundle } from '../bundle/bundle-files.ts';
import { MODEL_FILE } from '../bundle/manifest.ts';
import { creditDataset, creditFeatures, irisDataset, type Dataset } from './datasets.ts';
import {
  DEMO_INPUT,
  DEMO_OUTPUT_LABEL,
  DEMO_OUTPUT_PROBABILITIES,
  exportLinearClassifier,
} from './export.ts';
import { accuracy, trainLogisticRegression, type LinearModel } from './train.ts';
import { generateSignerKey } from '../bundle/signing.ts';

export interface DemoBundle {
  name: string;
  version: string;
  dir: string;
  testAccuracy: number;
  model: LinearModel;
  dataset: Dataset;
}

export interface BuildDemoOptions {
  outDir: string;
  /** PKCS#8 PEM Ed25519 key that signs the manifests. */
  privateKeyPem: string;
  /** Progress lines (e.g. to stderr). */
  progress?: (line: string) => void;
}

function irisManifest(version: string, classes: string[]) {
  return {
    schema: 'bulwark.model-manifest/v1',
    name: 'iris',
    version,
    description: 'Iris species from sepal/petal measurements (cm); logistic regression',
    riskTier: 'low',
    maxBatch: 64,
    inputs: [{ name: DEMO_INPUT, datatype: 'FP32', shape: [-1, 4], range: { min: 0, max: 30 } }],
    outputs: [
      { name: DEMO_OUTPUT_PROBABILITIES, datatype: 'FP32', shape: [-1, 3] },
      { name: DEMO_OUTPUT_LABEL, datatype: 'INT64', shape: [-1], labels: classes },
    ],
    outputPolicy: { roundDigits: 4, topK: 3, labelOnly: false },
  };
}

function creditManifest(classes: string[]) {
  return {
    schema: 'bulwark.model-manifest/v1',
    name: 'credit',
    version: '1',
    description: 'Synthetic credit approval; logistic regression (demo, high risk)',
    riskTier: 'high',
    maxBatch: 16,
    inputs: [
      {
        name: DEMO_INPUT,
        datatype: 'FP32',
        shape: [-1, creditFeatures.length],
        featureRanges: creditFeatures.map((f) => ({ min: f.min, max: f.max })),
      },
    ],
    outputs: [
      { name: DEMO_OUTPUT_PROBABILITIES, datatype: 'FP32', shape: [-1, 2] },
      { name: DEMO_OUTPUT_LABEL, datatype: 'INT64', shape: [-1], labels: classes },
    ],
    outputPolicy: {
      roundDigits: 2,
      labelOnly: true,
      laplace: { epsilonPerQuery: 0.5, sensitivity: 1, budgetPerClient: 50 },
    },
  };
}

/**
 * Trains, exports, signs and writes the demo bundles under `outDir`.
 *
 * @example
 * ```ts
 * const bundles = await buildDemoBundles({ outDir: tmp, privateKeyPem });
 * ```
 */
export async function buildDemoBundles(options: BuildDemoOptions): Promise<DemoBundle[]> {
  const progress = options.progress ?? (() => {});
  const specs = [
    { name: 'iris', version: '1', data: irisDataset(), classes: 3, epochs: 300 },
    { name: 'iris', version: '2', data: irisDataset(), classes: 3, epochs: 900 },
    { name: 'credit', version: '1', data: creditDataset(), classes: 2, epochs: 600 },
  ] as const;
  const out: DemoBundle[] = [];
  for (const spec of specs) {
    progress(`training ${spec.name}@${spec.version}`);
    const model = trainLogisticRegression(spec.data.train.xs, spec.data.train.ys, {
      classes: spec.classes,
      epochs: spec.epochs,
    });
    const onnx = exportLinearClassifier(model, spec.name);
    const manifest =
      spec.name === 'iris'
        ? irisManifest(spec.version, spec.data.classNames)
        : creditManifest(spec.data.classNames);
    const files = signBundle(manifest, new Map([[MODEL_FILE, onnx]]), options.privateKeyPem);
    const dir = path.join(options.outDir, spec.name, spec.version);
    await writeBundleDir(dir, files);
    const testAccuracy = accuracy(model, spec.data.test.xs, spec.data.test.ys);
    progress(`wrote ${dir} (test accuracy ${(testAccuracy * 100).toFixed(1)}%)`);
    out.push({
      name: spec.name,
      version: spec.version,
      dir,
      testAccuracy,
      model,
      dataset: spec.data,
    });
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const outDir = process.argv[2];
  if (!outDir) {
    process.stderr.write('usage: build.ts <out-dir> [signer.key]\n');
    process.exit(2);
  }
  const keyFile = process.argv[3];
  let privateKeyPem: string;
  if (keyFile) {
    privateKeyPem = await readFile(keyFile, 'utf8');
  } else {
    const key = generateSignerKey();
    privateKeyPem = key.privateKeyPem;
    await mkdir(outDir, { recursive: true });
    await writeFile(path.join(outDir, 'demo-signer.pub'), key.publicKeyPem);
  }
  await buildDemoBundles({
    outDir,
    privateKeyPem,
    progress: (l) => process.stderr.write(`${l}\n`),
  });
}
