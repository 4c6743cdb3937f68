import { mkdir, readFile, rename, writeFile, access } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CaError } from './ca-error.ts';
import { loadMeshCa, type IssuedCertificate, type MeshCa } from './authority.ts';
import { assertName } from './spiffe-id.ts';

/** Paths of one certificate/key pair plus the trust bundle that verifies its peers. */
export interface CertificateFiles {
  /** PEM certificate (the leaf). */
  certFile: string;
  /** PEM PKCS#8 private key, mode 0600. */
  keyFile: string;
  /** PEM trust bundle: the mesh root(s). */
  caFile: string;
}

/**
 * File layout of a CA directory:
 * `ca.crt` (trust bundle), `ca.key` (0600), `<service>.crt`/`<service>.key`,
 * `partners/<org>/<name>.crt`/`.key`.
 */
export const caFiles = (dir: string) => ({
  certFile: join(dir, 'ca.crt'),
  keyFile: join(dir, 'ca.key'),
});

/** Where `bulwark ca issue <name>` writes a service's files. */
export function serviceFiles(dir: string, name: string): CertificateFiles {
  assertName('service name', name);
  return {
    certFile: join(dir, `${name}.crt`),
    keyFile: join(dir, `${name}.key`),
    caFile: caFiles(dir).certFile,
  };
}

/** Where `bulwark ca issue <name> --client --org <org>` writes a partner client's files. */
export function partnerFiles(dir: string, org: string, name: string): CertificateFiles {
  assertName('organisation', org);
  assertName('client name', name);
  return {
    certFile: join(dir, 'partners', org, `${name}.crt`),
    keyFile: join(dir, 'partners', org, `${name}.key`),
    caFile: caFiles(dir).certFile,
  };
}

/**
 * Writes a file atomically (temporary file + rename), so a process that reloads certificates
 * when files change never reads half a file. `mode` applies from creation on.
 */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temp, data, { mode });
  await rename(temp, path);
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Writes `ca.crt` (0644) and `ca.key` (0600); refuses to overwrite an existing CA. */
export async function writeCaFiles(
  dir: string,
  ca: MeshCa,
  options: { overwrite?: boolean } = {},
): Promise<{ certFile: string; keyFile: string }> {
  const paths = caFiles(dir);
  if (!options.overwrite && ((await exists(paths.certFile)) || (await exists(paths.keyFile)))) {
    throw new CaError('ERR_CA_FILE_EXISTS', `a CA already exists in ${dir}`);
  }
  await writeFileAtomic(paths.keyFile, await ca.exportPrivateKeyPem(), 0o600);
  await writeFileAtomic(paths.certFile, ca.certificatePem, 0o644);
  return paths;
}

/** Loads the CA in `dir` (written by {@link writeCaFiles}). */
export async function readCaFiles(dir: string, now?: () => Date): Promise<MeshCa> {
  const paths = caFiles(dir);
  let certificatePem: string;
  let privateKeyPem: string;
  try {
    certificatePem = await readFile(paths.certFile, 'utf8');
    privateKeyPem = await readFile(paths.keyFile, 'utf8');
  } catch (err) {
    throw new CaError('ERR_CA_FILE_UNREADABLE', `no readable CA in ${dir}`, { cause: err });
  }
  return loadMeshCa({ certificatePem, privateKeyPem, ...(now ? { now } : {}) });
}

/** Writes an issued certificate (0644) and its key (0600) to `files`. */
export async function writeIssuedFiles(
  files: CertificateFiles,
  issued: IssuedCertificate,
): Promise<CertificateFiles> {
  await writeFileAtomic(files.keyFile, issued.privateKeyPem, 0o600);
  await writeFileAtomic(files.certFile, issued.certificatePem, 0o644);
  return files;
}
