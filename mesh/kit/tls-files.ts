import { readFile, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { MeshError } from './mesh-error.ts';

const read = promisify(readFile);

/** PEM files of a workload: its certificate, its private key and the trust bundle. */
export interface TlsFiles {
  /** Certificate (chain) PEM of this workload. */
  certFile: string;
  /** PKCS#8 private key PEM (keep it mode 0600). */
  keyFile: string;
  /** Trust bundle PEM: the mesh root(s) that sign peers' certificates. */
  caFile: string;
}

/** The contents of {@link TlsFiles}. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

/** Reads the three files at once; throws {@link MeshError} naming the unreadable file. */
export function readTlsFilesSync(files: TlsFiles): TlsMaterial {
  const one = (path: string, what: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new MeshError('ERR_MESH_CERTIFICATE_UNREADABLE', `cannot read ${what} ${path}`, {
        cause: err,
      });
    }
  };
  return {
    cert: one(files.certFile, 'certificate'),
    key: one(files.keyFile, 'private key'),
    ca: one(files.caFile, 'trust bundle'),
  };
}

async function readTlsFiles(files: TlsFiles): Promise<TlsMaterial> {
  const [cert, key, ca] = await Promise.all([
    read(files.certFile),
    read(files.keyFile),
    read(files.caFile),
  ]);
  return { cert, key, ca };
}

const same = (a: TlsMaterial, b: TlsMaterial) =>
  a.cert.equals(b.cert) && a.key.equals(b.key) && a.ca.equals(b.ca);

/** A running watch; `stop()` ends it. */
export interface TlsFileWatch {
  stop(): void;
}

/**
 * Polls the files every `intervalMs` and calls `onChange` with new contents when any of them
 * changed. Polling (rather than `fs.watch`) also sees files replaced by rename, as
 * certificate agents and `bulwark ca issue` do. A read that fails (a file briefly missing
 * during a swap) is retried at the next tick; `onChange` may throw to reject the material
 * (e.g. a key that does not match the certificate yet), which is retried too.
 */
export function watchTlsFiles(
  files: TlsFiles,
  initial: TlsMaterial,
  intervalMs: number,
  onChange: (material: TlsMaterial) => void,
  onError: (err: unknown) => void,
): TlsFileWatch {
  let current = initial;
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    readTlsFiles(files)
      .then((next) => {
        if (same(next, current)) return;
        onChange(next);
        current = next;
      })
      .catch(onError)
      .finally(() => {
        busy = false;
      });
  }, intervalMs);
  // The watch alone must not keep a process alive.
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
