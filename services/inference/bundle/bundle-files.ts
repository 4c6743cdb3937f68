/**
 * Reads and writes bundle directories `<root>/<name>/<version>/`. Reading refuses anything that
 * is not a plain, singly-linked regular file directly inside the bundle: symlinks (also a
 * symlinked bundle directory), hard links, subdirectories and names that could leave the bundle.
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { InferenceError } from '../errors.ts';
import { MANIFEST_FILE, SIGNATURE_FILE } from './manifest.ts';
import { checkBundlePath, sha256Hex } from './verify.ts';
import { signManifest } from './signing.ts';

/** Largest file accepted in a bundle (the service's models are small). */
export const MAX_BUNDLE_FILE_BYTES = 256 * 1024 * 1024;

async function readRegularFile(file: string, name: string): Promise<Uint8Array> {
  // O_NOFOLLOW closes the gap between the lstat below and the open.
  const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW).catch((err) => {
    throw new InferenceError(
      'ERR_BUNDLE_UNSAFE_PATH',
      `bundle file ${name} cannot be opened safely`,
      {
        cause: err,
      },
    );
  });
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) {
      throw new InferenceError(
        'ERR_BUNDLE_UNSAFE_PATH',
        `bundle entry ${name} is not a regular file`,
      );
    }
    if (stat.nlink !== 1) {
      throw new InferenceError(
        'ERR_BUNDLE_UNSAFE_PATH',
        `bundle file ${name} is hard-linked (${stat.nlink} links); copy it instead`,
      );
    }
    if (stat.size > MAX_BUNDLE_FILE_BYTES) {
      throw new InferenceError('ERR_BUNDLE_INVALID', `bundle file ${name} is too large`);
    }
    return new Uint8Array(await handle.readFile());
  } finally {
    await handle.close();
  }
}

/**
 * Reads every file of a bundle directory after checking the layout.
 *
 * @example
 * ```ts
 * const files = await readBundleDir('/var/lib/bulwark/models/iris/1');
 * const bundle = verifyBundleFiles(files, { trustedKeys });
 * ```
 */
export async function readBundleDir(dir: string): Promise<Map<string, Uint8Array>> {
  const dirStat = await lstat(dir).catch((err) => {
    throw new InferenceError('ERR_INFERENCE_MODEL_NOT_FOUND', `bundle ${dir} does not exist`, {
      cause: err,
    });
  });
  if (dirStat.isSymbolicLink() || !dirStat.isDirectory()) {
    throw new InferenceError('ERR_BUNDLE_UNSAFE_PATH', `bundle ${dir} is not a plain directory`);
  }
  const files = new Map<string, Uint8Array>();
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    checkBundlePath(entry.name);
    if (entry.isSymbolicLink()) {
      throw new InferenceError('ERR_BUNDLE_UNSAFE_PATH', `bundle file ${entry.name} is a symlink`);
    }
    if (!entry.isFile()) {
      throw new InferenceError(
        'ERR_BUNDLE_UNSAFE_PATH',
        `bundle entry ${entry.name} is not a regular file`,
      );
    }
    files.set(entry.name, await readRegularFile(path.join(dir, entry.name), entry.name));
  }
  return files;
}

/** Writes bundle files into a new directory (refusing to overwrite an existing file). */
export async function writeBundleDir(
  dir: string,
  files: ReadonlyMap<string, Uint8Array>,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, bytes] of files) {
    checkBundlePath(name);
    await writeFile(path.join(dir, name), bytes, { flag: 'wx', mode: 0o644 });
  }
}

/**
 * Builds a signed bundle in memory: computes digests into the manifest, serialises it and signs
 * it. `manifest.files` is filled in from `files`.
 */
export function signBundle(
  manifest: Record<string, unknown>,
  files: ReadonlyMap<string, Uint8Array>,
  privateKeyPem: string,
): Map<string, Uint8Array> {
  const digests: Record<string, string> = {};
  for (const [name, bytes] of files) {
    checkBundlePath(name);
    digests[name] = sha256Hex(bytes);
  }
  const manifestBytes = Buffer.from(
    `${JSON.stringify({ ...manifest, files: digests }, null, 2)}\n`,
  );
  const out = new Map(files);
  out.set(MANIFEST_FILE, manifestBytes);
  out.set(SIGNATURE_FILE, Buffer.from(signManifest(manifestBytes, privateKeyPem)));
  return out;
}
