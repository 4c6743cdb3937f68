import {
  Metadata,
  ServerInterceptingCall,
  status,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  attachPeerIdentity,
  connectionPeerOfCall,
  type ConnectionPeer,
  type PeerIdentity,
} from './peer-identity.ts';

/** Whether a server demands a client certificate or only accepts one. */
export type ClientCertificateMode = 'required' | 'optional';

/** Outcome of checking one call's peer. */
export type PeerDecision =
  { allowed: true; spiffeId?: string } | { allowed: false; reason: string; spiffeId?: string };

/** Decides whether a connection's peer may call this server. */
export function checkPeer(
  peer: ConnectionPeer,
  isAllowed: (spiffeId: string) => boolean,
  mode: ClientCertificateMode,
): PeerDecision {
  if (!peer.verified) {
    return mode === 'optional'
      ? { allowed: true }
      : { allowed: false, reason: 'no verified client certificate' };
  }
  if (!peer.spiffeId) {
    return {
      allowed: false,
      reason: `client certificate is not an X.509-SVID: ${peer.svidError ?? 'no SPIFFE ID'}`,
    };
  }
  if (!isAllowed(peer.spiffeId)) {
    return {
      allowed: false,
      reason: `peer ${peer.spiffeId} is not on the allow-list`,
      spiffeId: peer.spiffeId,
    };
  }
  return { allowed: true, spiffeId: peer.spiffeId };
}

/** Finds what the handshake recorded for a call's connection, if anything. */
export type ConnectionLookup = (
  call: ServerInterceptingCallInterface,
) => ConnectionPeer | undefined;

/**
 * A server interceptor that runs {@link checkPeer} on every call and answers refused calls
 * with `UNAUTHENTICATED` before any handler sees them; the log line says why, the caller
 * only learns that it is not authenticated. Allowed calls carry their identity to
 * `peerIdentity(call)`. `isAllowedFor` admits a peer to one method only (the server's own
 * identity to its health check).
 */
export function createPeerCheckInterceptor(
  isAllowed: (spiffeId: string) => boolean,
  mode: ClientCertificateMode,
  logger: Logger,
  lookup: ConnectionLookup = () => undefined,
  isAllowedFor: (spiffeId: string, method: string) => boolean = () => false,
): ServerInterceptor {
  // One predicate per method, made once: grpc-js runs interceptors only for registered
  // methods, so this stays bounded whatever paths clients send.
  const predicates = new Map<string, (spiffeId: string) => boolean>();
  const predicateFor = (path: string) => {
    let predicate = predicates.get(path);
    if (!predicate) {
      predicate = (id) => isAllowed(id) || isAllowedFor(id, path);
      predicates.set(path, predicate);
    }
    return predicate;
  };
  return (method, call) => {
    const isAllowedHere = predicateFor(method.path);
    // Plain listener/responder objects: the grpc-js builders only allocate more per call.
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            const peer = lookup(call) ?? connectionPeerOfCall(call);
            const decision = checkPeer(peer, isAllowedHere, mode);
            if (decision.allowed) {
              // The handshake recorded the address; asking the call goes through the HTTP/2
              // session's socket proxy on every call.
              const identity: PeerIdentity = { address: peer.address ?? call.getPeer() };
              if (peer.spiffeId) identity.spiffeId = peer.spiffeId;
              if (peer.thumbprint) identity.certificateThumbprint = peer.thumbprint;
              attachPeerIdentity(metadata, identity);
              nextMetadata(metadata);
              return;
            }
            logger.warn(
              {
                event: 'mesh.peer.refused',
                reason: decision.reason,
                peer: call.getPeer(),
                spiffeId: decision.spiffeId,
                method: method.path,
              },
              `refused call to ${method.path}: ${decision.reason}`,
            );
            call.sendStatus({
              code: status.UNAUTHENTICATED,
              details: 'peer is not authenticated for this service',
              metadata: new Metadata(),
            });
          },
        }),
    });
  };
}
