import type { PeerCertificate } from 'node:tls';
import { uriSansOf } from '../ca/index.ts';

// OpenSSL verification codes (as Node reports them) in words an operator can act on.
const REASONS: Record<string, string> = {
  CERT_HAS_EXPIRED: 'client certificate has expired',
  CERT_NOT_YET_VALID: 'client certificate is not yet valid',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'client certificate is not signed by a trusted mesh CA',
  UNABLE_TO_GET_ISSUER_CERT: 'client certificate is not signed by a trusted mesh CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'client certificate is not signed by a trusted mesh CA',
  SELF_SIGNED_CERT_IN_CHAIN: 'client certificate chain ends in an untrusted root',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'client certificate is self-signed',
  CERT_SIGNATURE_FAILURE: 'client certificate signature is invalid',
  CERT_REVOKED: 'client certificate is revoked',
  INVALID_PURPOSE: 'client certificate may not be used for client authentication',
};

/** Explains why a TLS client's certificate was not authorized. */
export function describeAuthorizationError(code: string | Error | undefined): string {
  const key = typeof code === 'string' ? code : (code as { code?: string } | undefined)?.code;
  return (key && REASONS[key]) ?? `client certificate not authorized (${String(key ?? code)})`;
}

/** Explains a failed TLS handshake (OpenSSL error codes in Node's `ERR_SSL_*` form). */
export function describeHandshakeError(err: Error & { code?: string }): string {
  const code = err.code ?? '';
  if (/WRONG_VERSION_NUMBER|HTTP_REQUEST|UNKNOWN_PROTOCOL|PACKET_LENGTH_TOO_LONG/.test(code)) {
    return 'not a TLS handshake (plaintext client?)';
  }
  if (/PEER_DID_NOT_RETURN_A_CERTIFICATE/.test(code)) return 'no client certificate';
  if (/TLSV1_ALERT|SSLV3_ALERT/.test(code)) return `client aborted the handshake (${code})`;
  if (code === 'ERR_SSL_NO_APPLICATION_PROTOCOL') return 'client does not speak HTTP/2 (ALPN h2)';
  return `TLS handshake failed (${code || err.message})`;
}

/** URI SANs a refused peer presented, for the log (never the key or the whole cert). */
export function presentedIdentities(cert: PeerCertificate | undefined): string[] | undefined {
  if (!cert?.raw) return undefined;
  try {
    return uriSansOf(cert.raw);
  } catch {
    return undefined;
  }
}
