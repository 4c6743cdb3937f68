import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  caFiles,
  createMeshCa,
  partnerFiles,
  readCaFiles,
  serviceFiles,
  writeCaFiles,
  writeIssuedFiles,
  type CertificateFiles,
  type MeshCa,
} from '../ca/index.ts';
import { SERVICE_NAMES } from '../config/index.ts';
import { generateSignerKey } from '../../services/inference/bundle/signing.ts';
import { buildDemoBundles } from '../../services/inference/demo/build.ts';
import { LauncherError } from './launcher-error.ts';
import type { MeshPlan } from './plan.ts';

/** Name of the partner client certificate and broker client made for each organisation. */
export const PARTNER_CLIENT = 'backend';

/** Reissue a workload certificate when it has less than this left (they live 24 h). */
const RENEW_BEFORE_MS = 12 * 3600_000;

/** Files `bulwark up` generates in the state directory, by purpose. */
export interface MeshState {
  ca: MeshCa;
  /** Workload certificates by name: the mesh services, `gateway`, and one per demo IdP org. */
  services: Record<string, CertificateFiles>;
  /** Partner client certificates (`spiffe://<td>/partner/<org>/backend`) by organisation. */
  partners: Record<string, CertificateFiles>;
  /** Secret files of each organisation's `<org>-backend` broker client. */
  backendSecrets: Record<string, string>;
  demoPasswordFile: string;
  /** Public key that signed the demo models (trusted by inference). */
  demoSignerPublicKey?: string;
}

/** Writes a fresh random secret (0600) unless the file already exists. */
async function ensureSecret(file: string): Promise<boolean> {
  if (existsSync(file)) return false;
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  return true;
}

function needsIssue(files: CertificateFiles, spiffeId: string, now: number): boolean {
  if (!existsSync(files.certFile) || !existsSync(files.keyFile)) return true;
  try {
    const cert = new X509Certificate(readFileSync(files.certFile));
    if (Date.parse(cert.validTo) - now < RENEW_BEFORE_MS) return true;
    return !(cert.subjectAltName ?? '').includes(`URI:${spiffeId}`);
  } catch {
    return true;
  }
}

/**
 * (Re)issues every workload and partner certificate that is missing, about to expire or for
 * another trust domain. Returns the names it issued.
 */
export async function renewCertificates(plan: MeshPlan, ca: MeshCa): Promise<string[]> {
  const issued: string[] = [];
  const td = plan.config.trustDomain;
  const now = Date.now();
  for (const name of [...SERVICE_NAMES, ...plan.idps.map((i) => i.org)]) {
    const files = serviceFiles(plan.certsDir, name);
    if (!needsIssue(files, `spiffe://${td}/svc/${name}`, now)) continue;
    await writeIssuedFiles(files, await ca.issueService(name));
    issued.push(name);
  }
  for (const org of plan.config.organisations) {
    const files = partnerFiles(plan.certsDir, org.id, PARTNER_CLIENT);
    if (!needsIssue(files, `spiffe://${td}/partner/${org.id}/${PARTNER_CLIENT}`, now)) continue;
    await writeIssuedFiles(files, await ca.issuePartner(org.id, PARTNER_CLIENT));
    issued.push(`${org.id}/${PARTNER_CLIENT}`);
  }
  return issued;
}

function hasStoredModels(dir: string): boolean {
  try {
    return readdirSync(dir, { withFileTypes: true }).some((d) => d.isDirectory());
  } catch {
    return false;
  }
}

/**
 * Creates on first run, and checks on later runs, everything `bulwark up` needs in the state
 * directory: the mesh CA, workload and partner certificates (keys 0600), demo secrets (0600)
 * and the demo model bundles with their signing key. Never overwrites a secret or the CA.
 */
export async function ensureState(
  plan: MeshPlan,
  progress: (line: string) => void = () => {},
): Promise<MeshState> {
  const { config } = plan;
  await mkdir(plan.stateDir, { recursive: true, mode: 0o700 });
  let ca: MeshCa;
  if (existsSync(caFiles(plan.certsDir).certFile)) {
    ca = await readCaFiles(plan.certsDir);
    if (ca.trustDomain !== config.trustDomain) {
      throw new LauncherError(
        'ERR_LAUNCHER_STATE',
        `the mesh CA in ${plan.certsDir} is for trust domain ${ca.trustDomain} but trustDomain ` +
          `is ${config.trustDomain}; use another --state-dir or set trustDomain back`,
      );
    }
  } else {
    progress(`creating the mesh CA for spiffe://${config.trustDomain} in ${plan.certsDir}`);
    ca = await createMeshCa({ trustDomain: config.trustDomain });
    await writeCaFiles(plan.certsDir, ca);
  }
  const issued = await renewCertificates(plan, ca);
  if (issued.length) progress(`issued certificates: ${issued.join(', ')}`);

  const created: string[] = [];
  for (const org of config.organisations) {
    if (await ensureSecret(org.clientSecretFile)) created.push(org.clientSecretFile);
  }
  const backendSecrets: Record<string, string> = {};
  for (const org of config.organisations) {
    const file = join(plan.secretsDir, `${org.id}-${PARTNER_CLIENT}-client-secret`);
    if (await ensureSecret(file)) created.push(file);
    backendSecrets[org.id] = file;
  }
  const demoPasswordFile = join(plan.secretsDir, 'demo-password');
  if (await ensureSecret(demoPasswordFile)) created.push(demoPasswordFile);
  if (created.length) progress(`generated ${created.length} secret file(s) (mode 0600)`);

  const modelDir = join(plan.stateDir, 'models');
  const keyFile = join(plan.stateDir, 'demo-signer.key');
  const pubFile = join(plan.stateDir, 'demo-signer.pub');
  if (!hasStoredModels(modelDir)) {
    progress('building the demo models (train, export to ONNX, sign)');
    let key: { privateKeyPem: string; publicKeyPem: string };
    if (existsSync(keyFile) && existsSync(pubFile)) {
      key = {
        privateKeyPem: readFileSync(keyFile, 'utf8'),
        publicKeyPem: readFileSync(pubFile, 'utf8'),
      };
    } else {
      key = generateSignerKey();
      await writeFile(keyFile, key.privateKeyPem, { mode: 0o600 });
      await writeFile(pubFile, key.publicKeyPem, { mode: 0o644 });
    }
    await buildDemoBundles({ outDir: modelDir, privateKeyPem: key.privateKeyPem, progress });
  }

  const services = Object.fromEntries(
    [...SERVICE_NAMES, ...plan.idps.map((i) => i.org)].map((n) => [
      n,
      serviceFiles(plan.certsDir, n),
    ]),
  );
  const partners = Object.fromEntries(
    config.organisations.map((o) => [o.id, partnerFiles(plan.certsDir, o.id, PARTNER_CLIENT)]),
  );
  return {
    ca,
    services,
    partners,
    backendSecrets,
    demoPasswordFile,
    ...(existsSync(pubFile) ? { demoSignerPublicKey: pubFile } : {}),
  };
}
