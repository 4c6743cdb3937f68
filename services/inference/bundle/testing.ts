/**
 * Helpers for tests that need signed bundles: a small Iris model (few epochs, so it is quick)
 * and ONNX bytes with hostile additions.
 */
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { irisDataset } from '../demo/datasets.ts';
import { exportLinearClassifier } from '../demo/export.ts';
import { trainLogisticRegression } from '../demo/train.ts';
import { MODEL_FILE } from './manifest.ts';
import { signBundle } from './bundle-files.ts';

let cached: Uint8Array | undefined;

/** ONNX bytes of a quickly trained Iris classifier. */
export function quickIrisOnnx(): Uint8Array {
  if (!cached) {
    const d = irisDataset();
    cached = exportLinearClassifier(
      trainLogisticRegression(d.train.xs, d.train.ys, { classes: 3, epochs: 60 }),
      'iris',
    );
  }
  return cached;
}

/** A manifest for the quick Iris model. */
export function irisTestManifest(
  name = 'iris',
  version = '1',
  extra: Record<string, unknown> = {},
) {
  return {
    schema: 'bulwark.model-manifest/v1',
    name,
    version,
    riskTier: 'low',
    maxBatch: 8,
    inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4], range: { min: 0, max: 30 } }],
    outputs: [
      { name: 'probabilities', datatype: 'FP32', shape: [-1, 3] },
      {
        name: 'label',
        datatype: 'INT64',
        shape: [-1],
        labels: ['setosa', 'versicolor', 'virginica'],
      },
    ],
    ...extra,
  };
}

/** Signed in-memory bundle files for the quick Iris model. */
export function signedIrisFiles(
  privateKeyPem: string,
  options: {
    name?: string;
    version?: string;
    onnx?: Uint8Array;
    manifest?: Record<string, unknown>;
  } = {},
): Map<string, Uint8Array> {
  return signBundle(
    irisTestManifest(options.name, options.version, options.manifest),
    new Map([[MODEL_FILE, options.onnx ?? quickIrisOnnx()]]),
    privateKeyPem,
  );
}

/**
 * Appends a second `graph` to ONNX bytes (protobuf merges repeated occurrences of a message
 * field), holding one initializer whose data lives in an external file.
 */
export function withExternalData(onnx: Uint8Array, location: string): Uint8Array {
  const w = new BinaryWriter();
  w.tag(7, WireType.LengthDelimited).fork(); // graph
  w.tag(5, WireType.LengthDelimited).fork(); // initializer
  w.tag(1, WireType.Varint).int64(4); // dims
  w.tag(2, WireType.Varint).int32(1); // FLOAT
  w.tag(8, WireType.LengthDelimited).string('stolen');
  w.tag(13, WireType.LengthDelimited).fork(); // external_data entry
  w.tag(1, WireType.LengthDelimited).string('location');
  w.tag(2, WireType.LengthDelimited).string(location);
  w.join();
  w.tag(14, WireType.Varint).int32(1); // data_location = EXTERNAL
  w.join();
  w.join();
  return Buffer.concat([onnx, w.finish()]);
}

/** Appends a node from a custom operator domain inside a second `graph`. */
export function withCustomDomainNode(onnx: Uint8Array, domain: string): Uint8Array {
  const w = new BinaryWriter();
  w.tag(7, WireType.LengthDelimited).fork();
  w.tag(1, WireType.LengthDelimited).fork();
  w.tag(1, WireType.LengthDelimited).string('input');
  w.tag(2, WireType.LengthDelimited).string('evil_out');
  w.tag(4, WireType.LengthDelimited).string('Exfiltrate');
  w.tag(7, WireType.LengthDelimited).string(domain);
  w.join();
  w.join();
  return Buffer.concat([onnx, w.finish()]);
}

/**
 * Appends a node whose `then_branch` subgraph (an `If` body) holds an initializer with
 * external data: the place a shallow check of top-level initializers misses.
 */
export function withExternalDataInSubgraph(onnx: Uint8Array, location: string): Uint8Array {
  const w = new BinaryWriter();
  w.tag(7, WireType.LengthDelimited).fork(); // graph
  w.tag(1, WireType.LengthDelimited).fork(); // node
  w.tag(1, WireType.LengthDelimited).string('cond');
  w.tag(2, WireType.LengthDelimited).string('branch_out');
  w.tag(4, WireType.LengthDelimited).string('If');
  w.tag(5, WireType.LengthDelimited).fork(); // attribute
  w.tag(1, WireType.LengthDelimited).string('then_branch');
  w.tag(6, WireType.LengthDelimited).fork(); // g: GraphProto
  w.tag(5, WireType.LengthDelimited).fork(); // initializer
  w.tag(8, WireType.LengthDelimited).string('hidden');
  w.tag(13, WireType.LengthDelimited).fork();
  w.tag(1, WireType.LengthDelimited).string('location');
  w.tag(2, WireType.LengthDelimited).string(location);
  w.join();
  w.join();
  w.join();
  w.tag(20, WireType.Varint).int32(5); // AttributeType.GRAPH
  w.join();
  w.join();
  w.join();
  return Buffer.concat([onnx, w.finish()]);
}

/** Appends a model-local function (ModelProto.functions) whose node uses `domain`. */
export function withFunctionNode(onnx: Uint8Array, domain: string): Uint8Array {
  const w = new BinaryWriter();
  w.tag(25, WireType.LengthDelimited).fork(); // FunctionProto
  w.tag(1, WireType.LengthDelimited).string('helper');
  w.tag(7, WireType.LengthDelimited).fork(); // node
  w.tag(4, WireType.LengthDelimited).string('Run');
  w.tag(7, WireType.LengthDelimited).string(domain);
  w.join();
  w.join();
  return Buffer.concat([onnx, w.finish()]);
}
