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
 * `peerIdentity(call)`.
 */
export function createPeerCheckInterceptor(gate: PeerGate): ServerInterceptor {
  return (method, call) => {
    const isAllowedHere = gate.predicateFor(method.path);
    // Plain listener/responder objects: the grpc-js builders only allocate more per call.
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            const refusal = gate.admit(call, isAllowedHere, gate.peerOf(call), metadata);
            if (refusal) gate.refuse(call, method.path, refusal);
            else nextMetadata(metadata);
          },
        }),
    });
  };
}

/** The peer check, for an interceptor that does more than check peers (see `server.ts`). */
export interface PeerGate {
  /** The allow-list predicate for one method (made once per method). */
  predicateFor(path: string): (spiffeId: string) => boolean;
  /** What the handshake recorded for the call's connection. */
  peerOf(call: ServerInterceptingCallInterface): ConnectionPeer;
  /**
   * Checks the call's peer: an allowed call gets its identity attached to `metadata` and
   * `undefined` back; a refused one gets the refusal, to hand to {@link PeerGate.refuse}.
   */
  admit(
    call: ServerInterceptingCallInterface,
    isAllowedHere: (spiffeId: string) => boolean,
    peer: ConnectionPeer,
    metadata: Metadata,
  ): Refusal | undefined;
  /** Logs the refusal and answers the call with `UNAUTHENTICATED` (on `call`). */
  refuse(call: ServerInterceptingCallInterface, path: string, refusal: Refusal): void;
}

/** Why a call's peer was refused. */
export type Refusal = Extract<PeerDecision, { allowed: false }>;

/**
 * The peer check for {@link createPeerCheckInterceptor} and the kit's combined interceptor.
 * `isAllowedFor` admits a peer to one method only (the server's own identity to its health
 * check).
 */
export function createPeerGate(
  isAllowed: (spiffeId: string) => boolean,
  mode: ClientCertificateMode,
  logger: Logger,
  lookup: ConnectionLookup = () => undefined,
  isAllowedFor: (spiffeId: string, method: string) => boolean = () => false,
): PeerGate {
  // One predicate per method, made once: grpc-js runs interceptors only for registered
  // methods, so this stays bounded whatever paths clients send.
  const predicates = new Map<string, (spiffeId: string) => boolean>();
  return {
    predicateFor(path) {
      let predicate = predicates.get(path);
      if (!predicate) {
        predicate = (id) => isAllowed(id) || isAllowedFor(id, path);
        predicates.set(path, predicate);
      }
      return predicate;
    },
    peerOf: (call) => lookup(call) ?? connectionPeerOfCall(call),
    admit(call, isAllowedHere, peer, metadata) {
      const decision = checkPeer(peer, isAllowedHere, mode);
      if (!decision.allowed) return decision;
      // The handshake recorded the address; asking the call goes through the HTTP/2 session's
      // socket proxy on every call.
      const identity: PeerIdentity = { address: peer.address ?? call.getPeer() };
      if (peer.spiffeId) identity.spiffeId = peer.spiffeId;
      if (peer.thumbprint) identity.certificateThumbprint = peer.thumbprint;
      attachPeerIdentity(metadata, identity);
      return undefined;
    },
    refuse(call, path, decision) {
      logger.warn(
        {
          event: 'mesh.peer.refused',
          reason: decision.reason,
          peer: call.getPeer(),
          spiffeId: decision.spiffeId,
          method: path,
        },
        `refused call to ${path}: ${decision.reason}`,
      );
      call.sendStatus({
        code: status.UNAUTHENTICATED,
        details: REFUSED_DETAILS,
        metadata: new Metadata(),
      });
    },
  };
}

/** What a refused caller is told (the log line says why). */
export const REFUSED_DETAILS = 'peer is not authenticated for this service';
