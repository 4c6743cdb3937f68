import type { Extension, X509Certificate } from '@peculiar/x509';
import { x509 } from './x509.ts';
import { randomBytes } from 'node:crypto';
import { meshCrypto, type CryptoKey, type CryptoKeyPair } from './keys.ts';

const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** Everything that goes into one leaf certificate; no validation happens here. */
export interface LeafSpec {
  commonName: string;
  uris: string[];
  dnsNames: string[];
  ipAddresses: string[];
  serverAuth: boolean;
  clientAuth: boolean;
  notBefore: Date;
  notAfter: Date;
  publicKey: CryptoKey;
}

/** The signing half of a CA: its certificate and private key. */
export interface CaSigner {
  certificate: X509Certificate;
  privateKey: CryptoKey;
}

// 16 random bytes with the top bit cleared: positive, unique, RFC 5280 compliant (<= 20 bytes).
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

/** Creates a self-signed ECDSA P-256 CA certificate. */
export async function signRoot(
  keys: CryptoKeyPair,
  trustDomain: string,
  notBefore: Date,
  notAfter: Date,
): Promise<X509Certificate> {
  return x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serialNumber(),
      // A unique name per root: during a rotation old and new roots sit in one bundle, and
      // TLS stacks find issuers by name.
      name: `CN=Bulwark mesh CA ${trustDomain} ${randomBytes(4).toString('hex')}, O=Bulwark`,
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        // X.509-SVID signing certificates may carry the trust domain's own SPIFFE ID.
        new x509.SubjectAlternativeNameExtension([
          { type: 'url', value: `spiffe://${trustDomain}` },
        ]),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, meshCrypto),
      ],
    },
    meshCrypto,
  );
}

/** Signs a leaf certificate exactly as `spec` says (callers validate first). */
export async function signLeaf(ca: CaSigner, spec: LeafSpec): Promise<X509Certificate> {
  const names = [
    ...spec.uris.map((value) => ({ type: 'url' as const, value })),
    ...spec.dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...spec.ipAddresses.map((value) => ({ type: 'ip' as const, value })),
  ];
  const usages: string[] = [];
  if (spec.serverAuth) usages.push(x509.ExtendedKeyUsage.serverAuth);
  if (spec.clientAuth) usages.push(x509.ExtendedKeyUsage.clientAuth);
  const extensions: Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(usages, false),
    // X.509-SVID: the SAN carries the identity, the subject may be empty, so mark it critical.
    new x509.SubjectAlternativeNameExtension(names, true),
    await x509.SubjectKeyIdentifierExtension.create(spec.publicKey, false, meshCrypto),
    await x509.AuthorityKeyIdentifierExtension.create(ca.certificate.publicKey, false, meshCrypto),
  ];
  return x509.X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject: `CN=${spec.commonName}, O=Bulwark`,
      issuer: ca.certificate.subject,
      notBefore: spec.notBefore,
      notAfter: spec.notAfter,
      publicKey: spec.publicKey,
      signingKey: ca.privateKey,
      signingAlgorithm: SIGNING,
      extensions,
    },
    meshCrypto,
  );
}

/** PEM text of a certificate, newline-terminated so that bundles can be concatenated. */
export function toPem(certificate: X509Certificate): string {
  return `${certificate.toString('pem').trimEnd()}\n`;
}
