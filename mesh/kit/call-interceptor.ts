import { ServerInterceptingCall, status, type ServerInterceptor } from '@grpc/grpc-js';
import type { CallObservation, CallObserver } from './call-observer.ts';
import type { InFlightCalls } from './in-flight.ts';
import { REFUSED_DETAILS, type PeerGate } from './peer-check.ts';

/**
 * The mesh server's one interceptor when its extra interceptors are all observers (or none):
 * the in-flight count, the observer (telemetry) and the peer check in a single grpc-js layer,
 * with the same order of effects as the stacked interceptors (the observer sees the call first
 * and its refusal too; the in-flight count drops after the status went out).
 */
export function createMeshCallInterceptor(
  inFlight: InFlightCalls,
  gate: PeerGate,
  observer: CallObserver | undefined,
): ServerInterceptor {
  return (method, call) => {
    const isAllowedHere = gate.predicateFor(method.path);
    let observation: CallObservation | undefined;
    let finished = false;
    inFlight.enter();
    const onReceiveHalfClose = (next: () => void) => {
      // The handler starts here: it runs in the call's trace context.
      if (observation) observation.run(next, undefined);
      else next();
    };
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            const peer = gate.peerOf(call);
            if (observer)
              observation = observer.start(method, metadata, peer.address ?? call.getPeer());
            const refusal = gate.admit(call, isAllowedHere, peer, metadata);
            if (!refusal) {
              nextMetadata(metadata);
              return;
            }
            // The refusal's log line belongs to the call's trace. Its status goes straight to
            // the transport, under this layer, so it is recorded here.
            if (observation)
              observation.run(() => gate.refuse(call, method.path, refusal), undefined);
            else gate.refuse(call, method.path, refusal);
            finished = true;
            observation?.end(status.UNAUTHENTICATED, REFUSED_DETAILS);
            inFlight.leave();
          },
          ...(method.requestStream
            ? {
                onReceiveMessage: (message: unknown, nextMessage: (message: unknown) => void) => {
                  if (observation) observation.run(nextMessage, message);
                  else nextMessage(message);
                },
              }
            : {}),
          onReceiveHalfClose,
          onCancel: () => {
            // grpc-js reports every call's end here, after its status too.
            if (finished) return;
            finished = true;
            observation?.cancelled(call.getDeadline());
            inFlight.leave();
          },
        }),
      sendStatus: (statusObject, nextStatus) => {
        if (finished) {
          nextStatus(statusObject);
          return;
        }
        finished = true;
        observation?.end(statusObject.code, statusObject.details);
        nextStatus(statusObject);
        inFlight.leave();
      },
    });
  };
}
