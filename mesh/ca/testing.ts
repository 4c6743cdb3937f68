import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMeshCa, type MeshCa } from './authority.ts';
import {
  partnerFiles,
  serviceFiles,
  writeCaFiles,
  writeFileAtomic,
  writeIssuedFiles,
  type CertificateFiles,
} from './files.ts';
import { generateP256KeyPair, privateKeyToPem } from './keys.ts';
import { signLeaf, toPem } from './sign.ts';
import { DEFAULT_TRUST_DOMAIN } from './spiffe-id.ts';

/** Certificate files of one workload in a test PKI, plus the PEM text for in-memory use. */
export interface TestWorkload extends CertificateFiles {
  spiffeId: string;
  certPem: string;
  keyPem: string;
  caPem: string;
}

/** Options of {@link createTestPki}. */
export interface TestPkiOptions {
  /** Directory to write into. Default: a fresh temporary directory, removed by `cleanup()`. */
  dir?: string;
  /** Default `bulwark.local`. */
  trustDomain?: string;
  /** Service names to issue workload SVIDs for, e.g. `['audit', 'inference']`. */
  services?: string[];
  /** Partner client certificates to issue. */
  clients?: { org: string; name: string }[];
  /** Lifetime of the issued certificates in hours. Default 24. */
  lifetimeHours?: number;
  /** Clock of the CA. Default real time. */
  now?: () => Date;
}

/** A CA and its workloads on disk, for tests. */
export interface TestPki {
  dir: string;
  trustDomain: string;
  ca: MeshCa;
  /** The trust bundle file (`ca.crt`). */
  caFile: string;
  caPem: string;
  /** Workloads by service name. */
  services: Record<string, TestWorkload>;
  /** Partner workloads by `<org>/<name>`. */
  clients: Record<string, TestWorkload>;
  /** Issues (or re-issues) a service certificate into the directory. */
  issueService(name: string, lifetimeHours?: number): Promise<TestWorkload>;
  /** Issues (or re-issues) a partner client certificate into the directory. */
  issuePartner(org: string, name: string): Promise<TestWorkload>;
  /** Removes the directory if this helper created it. */
  cleanup(): Promise<void>;
}

/** Reads a workload's returned file set back as PEM text. */
function workload(
  spiffeId: string,
  files: CertificateFiles,
  certPem: string,
  keyPem: string,
  caPem: string,
): TestWorkload {
  return { spiffeId, ...files, certPem, keyPem, caPem };
}

/**
 * Creates a throw-away mesh CA and certificates for the given services and partner clients,
 * written as PEM files like `bulwark ca init` + `bulwark ca issue` would.
 *
 * @example
 * ```ts
 * const pki = await createTestPki({ services: ['audit', 'inference'] });
 * const { certFile, keyFile, caFile, spiffeId } = pki.services.audit!;
 * // ... start a mesh server with these files ...
 * await pki.cleanup();
 * ```
 */
export async function createTestPki(options: TestPkiOptions = {}): Promise<TestPki> {
  const ownsDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'bulwark-pki-')));
  const trustDomain = options.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const ca = await createMeshCa({ trustDomain, ...(options.now ? { now: options.now } : {}) });
  const { certFile: caFile } = await writeCaFiles(dir, ca, { overwrite: true });
  const lifetime = options.lifetimeHours ?? 24;

  const pki: TestPki = {
    dir,
    trustDomain,
    ca,
    caFile,
    caPem: ca.certificatePem,
    services: {},
    clients: {},
    async issueService(name, lifetimeHours = lifetime) {
      const issued = await ca.issueService(name, { lifetimeHours });
      const files = await writeIssuedFiles(serviceFiles(dir, name), issued);
      const result = workload(
        issued.spiffeId,
        files,
        issued.certificatePem,
        issued.privateKeyPem,
        ca.certificatePem,
      );
      pki.services[name] = result;
      return result;
    },
    async issuePartner(org, name) {
      const issued = await ca.issuePartner(org, name, { lifetimeHours: lifetime });
      const files = await writeIssuedFiles(partnerFiles(dir, org, name), issued);
      const result = workload(
        issued.spiffeId,
        files,
        issued.certificatePem,
        issued.privateKeyPem,
        ca.certificatePem,
      );
      pki.clients[`${org}/${name}`] = result;
      return result;
    },
    async cleanup() {
      if (ownsDir) await rm(dir, { recursive: true, force: true });
    },
  };
  for (const name of options.services ?? []) await pki.issueService(name);
  for (const client of options.clients ?? []) await pki.issuePartner(client.org, client.name);
  return pki;
}

/** What {@link issueUncheckedCertificate} puts into a certificate; nothing is validated. */
export interface UncheckedCertificateSpec {
  /** File name stem inside the PKI directory, e.g. `rogue-two-uris`. */
  stem: string;
  uris: string[];
  notBefore?: Date;
  notAfter?: Date;
  dnsNames?: string[];
  ipAddresses?: string[];
}

/**
 * Issues a certificate the CA's normal API refuses to make (several URI SANs, a past validity
 * window, ...), signed by `ca`. For refusal tests only: it lets a test play the attacker.
 */
export async function issueUncheckedCertificate(
  ca: MeshCa,
  dir: string,
  spec: UncheckedCertificateSpec,
): Promise<TestWorkload> {
  const keys = await generateP256KeyPair();
  const now = ca.now().getTime();
  const certificate = await signLeaf(ca.signer, {
    commonName: spec.stem,
    uris: spec.uris,
    dnsNames: spec.dnsNames ?? ['localhost'],
    ipAddresses: spec.ipAddresses ?? ['127.0.0.1', '::1'],
    serverAuth: true,
    clientAuth: true,
    notBefore: spec.notBefore ?? new Date(now - 60_000),
    notAfter: spec.notAfter ?? new Date(now + 3_600_000),
    publicKey: keys.publicKey,
  });
  const certPem = toPem(certificate);
  const keyPem = await privateKeyToPem(keys.privateKey);
  const files: CertificateFiles = {
    certFile: join(dir, `${spec.stem}.crt`),
    keyFile: join(dir, `${spec.stem}.key`),
    caFile: join(dir, 'ca.crt'),
  };
  await writeFileAtomic(files.keyFile, keyPem, 0o600);
  await writeFileAtomic(files.certFile, certPem, 0o644);
  return workload(spec.uris[0] ?? '', files, certPem, keyPem, ca.certificatePem);
}
