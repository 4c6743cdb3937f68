import type { PeerCertificate } from 'node:tls';
import type { Metadata, ServerUnaryCall } from '@grpc/grpc-js';
import { certificateThumbprint, spiffeIdOf } from '../ca/index.ts';

type AuthContext = ReturnType<ServerUnaryCall<unknown, unknown>['getAuthContext']>;

/** Who called, as far as the transport can tell. */
export interface PeerIdentity {
  /**
   * SPIFFE ID of the verified client certificate. Absent when the caller sent no certificate
   * (only possible on servers whose client certificate is optional).
   */
  spiffeId?: string;
  /**
   * SHA-256 of the verified client certificate's DER, base64url: the RFC 8705 `x5t#S256`
   * value that certificate-bound tokens must match. Absent without a client certificate.
   */
  certificateThumbprint?: string;
  /** The caller's address as grpc-js reports it (`ip:port`). */
  address: string;
}

/** The part of a grpc-js server call this module reads. */
export interface CallWithPeer {
  getPeer(): string;
  getAuthContext(): AuthContext;
  metadata?: Metadata;
}

/** What the kit learned about a connection's client certificate at the handshake. */
export interface ConnectionPeer {
  /** A verified client certificate was presented. */
  verified: boolean;
  spiffeId?: string;
  /** Why the verified certificate is not a usable X.509-SVID. */
  svidError?: string;
  thumbprint?: string;
  /** The client's `ip:port` as grpc-js's `call.getPeer()` spells it, when known. */
  address?: string;
}

/** Builds a {@link ConnectionPeer} from a verified certificate (or none). */
export function connectionPeerOf(cert: PeerCertificate | undefined): ConnectionPeer {
  if (!cert?.raw) return { verified: false };
  const peer: ConnectionPeer = { verified: true, thumbprint: thumbprintOf(cert) };
  try {
    peer.spiffeId = spiffeIdOf(cert);
  } catch (err) {
    peer.svidError = (err as Error).message;
  }
  return peer;
}

function thumbprintOf(cert: PeerCertificate): string {
  // Node already computed the SHA-256 fingerprint; it is the same digest in hex.
  return cert.fingerprint256
    ? Buffer.from(cert.fingerprint256.replaceAll(':', ''), 'hex').toString('base64url')
    : certificateThumbprint(cert);
}

/**
 * The peer of a call from grpc-js's auth context. Costly (Node re-reads the certificate on
 * every call), so the kit uses it only when it has no record of the connection.
 */
export function connectionPeerOfCall(call: CallWithPeer): ConnectionPeer {
  // grpc-js fills the auth context only for connections whose certificate chain verified.
  return connectionPeerOf(call.getAuthContext().sslPeerCertificate);
}

// The kit's verdict rides on the request's Metadata object under a symbol: clients can only
// send string keys, so they cannot forge it.
const IDENTITY = Symbol('bulwark.peerIdentity');

/** Attaches the checked identity to a call's request metadata (kit internal). */
export function attachPeerIdentity(metadata: Metadata, identity: PeerIdentity): void {
  Object.defineProperty(metadata, IDENTITY, { value: identity, enumerable: false });
}

/**
 * The identity of the caller of a mesh server call. On mesh servers the kit has already
 * refused callers without a valid, allowed SVID before the handler runs, so `spiffeId` is
 * present there; on servers with optional client certificates the handler decides what a
 * call without one may do.
 *
 * @example
 * ```ts
 * const impl = {
 *   append: unaryHandler(async (call) => {
 *     const { spiffeId } = peerIdentity(call); // 'spiffe://bulwark.local/svc/inference'
 *     return store.append(call.request, spiffeId);
 *   }),
 * };
 * ```
 */
export function peerIdentity(call: CallWithPeer): PeerIdentity {
  const attached = (call.metadata as { [IDENTITY]?: PeerIdentity } | undefined)?.[IDENTITY];
  if (attached) return attached;
  const peer = connectionPeerOfCall(call);
  const identity: PeerIdentity = { address: call.getPeer() };
  if (peer.thumbprint) identity.certificateThumbprint = peer.thumbprint;
  if (peer.spiffeId) identity.spiffeId = peer.spiffeId;
  return identity;
}
