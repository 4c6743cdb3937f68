/**
 * Verification of a model bundle before anything is loaded: the manifest signature by a
 * trusted key, the SHA-256 of every file, an exact file list, and an ONNX walk that refuses
 * external data and operator domains that are not allowed. The bytes that were hashed are the
 * bytes handed to onnxruntime, so nothing can change between check and load.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { InferenceError } from '../errors.ts';
import { inspectOnnxModel } from '../onnx/onnx-inspect.ts';
import {
  MANIFEST_FILE,
  MODEL_FILE,
  SAFE_SEGMENT,
  SIGNATURE_FILE,
  parseManifest,
  type ModelManifest,
} from './manifest.ts';
import { verifyManifestSignature } from './signing.ts';

/** A bundle whose signature, digests and model file passed every check. */
export interface VerifiedBundle {
  manifest: ModelManifest;
  /** The model bytes that were hashed; load exactly these. */
  model: Uint8Array;
  /** Lowercase hex SHA-256 of `manifest.json`: the bundle digest used in audit records. */
  bundleSha256: string;
  signerKeyId: string;
  /** Every file of the bundle (for storing a registered bundle). */
  files: ReadonlyMap<string, Uint8Array>;
}

export interface VerifyOptions {
  /** Ed25519 public keys whose signatures are accepted. */
  trustedKeys: readonly KeyObject[];
  /** Operator domains accepted besides the default ONNX domain (`''` / `ai.onnx`). */
  allowedOperatorDomains?: readonly string[];
  /** When given, the manifest must name exactly this model and version. */
  expect?: { name: string; version: string };
}

const DEFAULT_DOMAINS = new Set(['', 'ai.onnx']);

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Refuses a bundle-relative path that is not one plain file name. */
export function checkBundlePath(path: string): void {
  if (!SAFE_SEGMENT.test(path) || path.includes('..')) {
    throw new InferenceError(
      'ERR_BUNDLE_UNSAFE_PATH',
      `bundle path ${JSON.stringify(path.slice(0, 80))} is not a plain file name inside the bundle`,
    );
  }
}

/**
 * Verifies the files of a bundle held in memory.
 *
 * @example
 * ```ts
 * const bundle = verifyBundleFiles(files, { trustedKeys: [loadTrustedKey(pem)] });
 * ```
 */
export function verifyBundleFiles(
  files: ReadonlyMap<string, Uint8Array>,
  options: VerifyOptions,
): VerifiedBundle {
  for (const path of files.keys()) checkBundlePath(path);
  const manifestBytes = files.get(MANIFEST_FILE);
  const signatureBytes = files.get(SIGNATURE_FILE);
  if (!manifestBytes) throw new InferenceError('ERR_BUNDLE_INVALID', 'bundle has no manifest.json');
  if (!signatureBytes) {
    throw new InferenceError('ERR_BUNDLE_SIGNATURE', 'bundle is unsigned: manifest.sig is missing');
  }
  let signerKeyId: string;
  try {
    signerKeyId = verifyManifestSignature(manifestBytes, signatureBytes, options.trustedKeys);
  } catch (err) {
    throw new InferenceError('ERR_BUNDLE_SIGNATURE', (err as Error).message, { cause: err });
  }
  // Parse only after the signature holds: unsigned JSON is never interpreted.
  let manifest: ModelManifest;
  try {
    manifest = parseManifest(JSON.parse(Buffer.from(manifestBytes).toString('utf8')));
  } catch (err) {
    throw new InferenceError('ERR_BUNDLE_INVALID', (err as Error).message, { cause: err });
  }
  if (
    options.expect &&
    (manifest.name !== options.expect.name || manifest.version !== options.expect.version)
  ) {
    throw new InferenceError(
      'ERR_BUNDLE_INVALID',
      `bundle at ${options.expect.name}/${options.expect.version} declares ${manifest.name}/${manifest.version}`,
    );
  }
  const listed = Object.keys(manifest.files);
  for (const path of listed) checkBundlePath(path);
  if (!listed.includes(MODEL_FILE)) {
    throw new InferenceError('ERR_BUNDLE_INVALID', 'manifest does not list model.onnx');
  }
  for (const path of files.keys()) {
    if (path !== MANIFEST_FILE && path !== SIGNATURE_FILE && !listed.includes(path)) {
      throw new InferenceError('ERR_BUNDLE_DIGEST', `file ${path} is not listed in the manifest`);
    }
  }
  for (const path of listed) {
    const bytes = files.get(path);
    if (!bytes) throw new InferenceError('ERR_BUNDLE_DIGEST', `listed file ${path} is missing`);
    if (sha256Hex(bytes) !== manifest.files[path]) {
      throw new InferenceError(
        'ERR_BUNDLE_DIGEST',
        `SHA-256 of ${path} does not match the manifest`,
      );
    }
  }
  const model = files.get(MODEL_FILE)!;
  checkOnnx(model, options.allowedOperatorDomains ?? []);
  return { manifest, model, bundleSha256: sha256Hex(manifestBytes), signerKeyId, files };
}

function checkOnnx(model: Uint8Array, allowed: readonly string[]): void {
  let found;
  try {
    found = inspectOnnxModel(model);
  } catch (err) {
    throw new InferenceError('ERR_BUNDLE_INVALID', 'model.onnx is not a valid ONNX model', {
      cause: err,
    });
  }
  if (found.nodeCount === 0)
    throw new InferenceError('ERR_BUNDLE_INVALID', 'model.onnx has no graph');
  if (found.externalDataLocations.length > 0 || found.externalTensors > 0) {
    const first = found.externalDataLocations[0];
    const escapes = first !== undefined && (first.includes('..') || first.startsWith('/'));
    throw new InferenceError(
      'ERR_BUNDLE_EXTERNAL_DATA',
      escapes
        ? `model.onnx references external data outside the bundle (${JSON.stringify(first.slice(0, 80))})`
        : 'model.onnx references external data; bundles must be self-contained',
    );
  }
  for (const domain of [...found.nodeDomains, ...found.opsetDomains]) {
    if (!DEFAULT_DOMAINS.has(domain) && !allowed.includes(domain)) {
      throw new InferenceError(
        'ERR_BUNDLE_OPERATOR_DOMAIN',
        `model.onnx uses operator domain ${JSON.stringify(domain.slice(0, 80))}, which is not allowed`,
      );
    }
  }
}
