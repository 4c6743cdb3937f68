import type { X509Certificate } from '@peculiar/x509';
import { x509 } from './x509.ts';
import { CaError } from './ca-error.ts';
import { generateP256KeyPair, privateKeyFromPem, privateKeyToPem, type CryptoKey } from './keys.ts';
import { signLeaf, signRoot, toPem, type CaSigner } from './sign.ts';
import {
  DEFAULT_TRUST_DOMAIN,
  assertTrustDomain,
  partnerSpiffeId,
  serviceSpiffeId,
} from './spiffe-id.ts';

const HOUR_MS = 3_600_000;
// Leaf certificates start a little in the past so small clock skew between hosts is harmless.
const BACKDATE_MS = 60_000;

/** Options of {@link createMeshCa}; every field has a documented default. */
export interface MeshCaOptions {
  /** Trust domain of every SPIFFE ID this CA issues. Default `bulwark.local`. */
  trustDomain?: string;
  /** Lifetime of the root certificate in days. Default 3650 (ten years). */
  rootLifetimeDays?: number;
  /** Clock, injectable for tests. Default `() => new Date()`. */
  now?: () => Date;
}

/** Options of one issued certificate. */
export interface IssueOptions {
  /** Lifetime in hours. Default 24. */
  lifetimeHours?: number;
  /**
   * DNS SANs of a service certificate. Default `['localhost']` so loopback connections pass
   * ordinary hostname checks too (mesh clients check the SPIFFE ID instead). Ignored for
   * partner client certificates.
   */
  dnsNames?: string[];
  /** IP SANs of a service certificate. Default `['127.0.0.1', '::1']`. */
  ipAddresses?: string[];
}

/** A certificate and its fresh private key, as PEM. */
export interface IssuedCertificate {
  spiffeId: string;
  certificatePem: string;
  /** PKCS#8 PEM. A secret: write it with mode 0600 and never log it. */
  privateKeyPem: string;
  notBefore: Date;
  notAfter: Date;
}

/** A loaded mesh CA that can issue X.509-SVIDs. */
export interface MeshCa {
  readonly trustDomain: string;
  /** The root certificate (PEM); the trust bundle clients and servers load. */
  readonly certificatePem: string;
  /** Issues a service workload SVID (`spiffe://<td>/svc/<name>`, serverAuth + clientAuth). */
  issueService(name: string, options?: IssueOptions): Promise<IssuedCertificate>;
  /** Issues a partner client SVID (`spiffe://<td>/partner/<org>/<name>`, clientAuth only). */
  issuePartner(org: string, name: string, options?: IssueOptions): Promise<IssuedCertificate>;
  /** Exports the CA private key as PKCS#8 PEM (for `bulwark ca init`; a secret). */
  exportPrivateKeyPem(): Promise<string>;
  /** The signer (certificate + key), for tests that need certificates no policy allows. */
  readonly signer: CaSigner;
  /** The clock this CA uses. */
  readonly now: () => Date;
}

function checkLifetime(option: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0) {
    throw new CaError('ERR_CA_INVALID_OPTION', `${option} must be a positive number`);
  }
}

function buildCa(signer: CaSigner, certificatePem: string, trustDomain: string, now: () => Date) {
  async function issue(
    spiffeId: string,
    commonName: string,
    serverAuth: boolean,
    options: IssueOptions,
  ): Promise<IssuedCertificate> {
    const lifetimeHours = options.lifetimeHours ?? 24;
    checkLifetime('lifetimeHours', lifetimeHours);
    const keys = await generateP256KeyPair();
    const issuedAt = now().getTime();
    const notBefore = new Date(issuedAt - BACKDATE_MS);
    // Never outlive the root: a leaf past its issuer's validity would fail anyway.
    const notAfter = new Date(
      Math.min(issuedAt + lifetimeHours * HOUR_MS, signer.certificate.notAfter.getTime()),
    );
    const certificate = await signLeaf(signer, {
      commonName,
      uris: [spiffeId],
      dnsNames: serverAuth ? (options.dnsNames ?? ['localhost']) : [],
      ipAddresses: serverAuth ? (options.ipAddresses ?? ['127.0.0.1', '::1']) : [],
      serverAuth,
      clientAuth: true,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
    });
    return {
      spiffeId,
      certificatePem: toPem(certificate),
      privateKeyPem: await privateKeyToPem(keys.privateKey),
      notBefore,
      notAfter,
    };
  }

  const ca: MeshCa = {
    trustDomain,
    certificatePem,
    signer,
    now,
    // async, so a bad name rejects the promise instead of throwing synchronously.
    issueService: async (name, options = {}) =>
      issue(serviceSpiffeId(name, trustDomain), name, true, options),
    issuePartner: async (org, name, options = {}) =>
      issue(partnerSpiffeId(org, name, trustDomain), `${org}/${name}`, false, options),
    exportPrivateKeyPem: () => privateKeyToPem(signer.privateKey),
  };
  return ca;
}

/**
 * Creates a new mesh CA: a fresh ECDSA P-256 key and a self-signed root.
 *
 * @example
 * ```ts
 * const ca = await createMeshCa({ trustDomain: 'bulwark.local' });
 * const audit = await ca.issueService('audit'); // spiffe://bulwark.local/svc/audit, 24 h
 * ```
 */
export async function createMeshCa(options: MeshCaOptions = {}): Promise<MeshCa> {
  const { trustDomain, rootLifetimeDays, now } = {
    trustDomain: DEFAULT_TRUST_DOMAIN,
    rootLifetimeDays: 3650,
    now: () => new Date(),
    ...options,
  };
  assertTrustDomain(trustDomain);
  checkLifetime('rootLifetimeDays', rootLifetimeDays);
  const keys = await generateP256KeyPair();
  const start = now().getTime();
  const certificate = await signRoot(
    keys,
    trustDomain,
    new Date(start - BACKDATE_MS),
    new Date(start + rootLifetimeDays * 24 * HOUR_MS),
  );
  return buildCa(
    { certificate, privateKey: keys.privateKey },
    toPem(certificate),
    trustDomain,
    now,
  );
}

/**
 * Loads an existing CA from its root certificate and PKCS#8 private key (PEM). The trust
 * domain is read from the root's `spiffe://<trust-domain>` URI SAN.
 */
export async function loadMeshCa(input: {
  certificatePem: string;
  privateKeyPem: string;
  now?: () => Date;
}): Promise<MeshCa> {
  let certificate: X509Certificate;
  let privateKey: CryptoKey;
  try {
    certificate = new x509.X509Certificate(input.certificatePem);
    privateKey = await privateKeyFromPem(input.privateKeyPem);
  } catch (err) {
    throw new CaError('ERR_CA_FILE_UNREADABLE', 'CA certificate or key is not valid PEM', {
      cause: err,
    });
  }
  const san = certificate.getExtension(x509.SubjectAlternativeNameExtension);
  const uri = san?.names.items.find((name) => name.type === 'url')?.value ?? '';
  const trustDomain = /^spiffe:\/\/([^/]+)$/.exec(uri)?.[1];
  if (!trustDomain) {
    throw new CaError(
      'ERR_CA_FILE_UNREADABLE',
      'CA certificate does not name a SPIFFE trust domain',
    );
  }
  assertTrustDomain(trustDomain);
  return buildCa(
    { certificate, privateKey },
    toPem(certificate),
    trustDomain,
    input.now ?? (() => new Date()),
  );
}
