import { createHash, X509Certificate } from 'node:crypto';

/**
 * The RFC 8705 `x5t#S256` thumbprint (SHA-256 of the DER, base64url) of the client certificate
 * Envoy forwards in `source.certificate` (URL-encoded PEM). Undefined when it does not parse.
 */
export function certificateThumbprintFromEnvoy(urlEncodedPem: string): string | undefined {
  try {
    const cert = new X509Certificate(decodeURIComponent(urlEncodedPem));
    return createHash('sha256').update(cert.raw).digest('base64url');
  } catch {
    return undefined;
  }
}
