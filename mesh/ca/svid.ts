import { createHash, X509Certificate as NodeX509Certificate } from 'node:crypto';
import type { X509Certificate } from '@peculiar/x509';
import { x509 } from './x509.ts';
import { CaError } from './ca-error.ts';
import { parseSpiffeId } from './spiffe-id.ts';

/**
 * Any form a certificate arrives in: PEM text, DER bytes, Node's `X509Certificate`, a TLS
 * `PeerCertificate` (its `raw` DER is used) or a `@peculiar/x509` certificate.
 */
export type CertificateInput =
  string | Uint8Array | NodeX509Certificate | X509Certificate | { raw: Uint8Array };

/** Returns the DER bytes of a certificate in any accepted form. */
export function certificateDer(cert: CertificateInput): Buffer {
  if (typeof cert === 'string') return Buffer.from(new x509.X509Certificate(cert).rawData);
  if (cert instanceof Uint8Array) return Buffer.from(cert);
  if (cert instanceof NodeX509Certificate) return cert.raw;
  if (cert instanceof x509.X509Certificate) return Buffer.from(cert.rawData);
  return Buffer.from(cert.raw);
}

/**
 * The SHA-256 thumbprint of a certificate's DER encoding, base64url without padding: the
 * `x5t#S256` confirmation value of RFC 8705 certificate-bound tokens.
 */
export function certificateThumbprint(cert: CertificateInput): string {
  return createHash('sha256').update(certificateDer(cert)).digest('base64url');
}

/** All URI SANs of a certificate, in order. */
export function uriSansOf(cert: CertificateInput): string[] {
  const parsed = new x509.X509Certificate(certificateDer(cert));
  const san = parsed.getExtension(x509.SubjectAlternativeNameExtension);
  return (san?.names.items ?? []).filter((n) => n.type === 'url').map((n) => n.value);
}

/**
 * The SPIFFE ID of an X.509-SVID. Refuses (with {@link CaError} `ERR_CA_INVALID_SVID`) a
 * certificate with zero or several URI SANs, or whose URI SAN is not a valid SPIFFE ID: an
 * SVID names exactly one identity, so anything else is ambiguous and must not authenticate.
 *
 * @example
 * ```ts
 * spiffeIdOf(fs.readFileSync('certs/audit.crt', 'utf8')); // 'spiffe://bulwark.local/svc/audit'
 * ```
 */
export function spiffeIdOf(cert: CertificateInput): string {
  let uris: string[];
  try {
    uris = uriSansOf(cert);
  } catch (err) {
    throw new CaError('ERR_CA_INVALID_SVID', 'certificate cannot be parsed', { cause: err });
  }
  if (uris.length !== 1) {
    throw new CaError(
      'ERR_CA_INVALID_SVID',
      `certificate has ${uris.length} URI SANs; an X.509-SVID has exactly one`,
    );
  }
  const id = uris[0] ?? '';
  parseSpiffeId(id);
  return id;
}
