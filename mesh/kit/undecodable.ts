/**
 * Clear refusals for requests that do not decode. grpc-js answers a request its decoder throws
 * on with a bare `INTERNAL` ("Error deserializing request"); a client sending, say, a uint64
 * beyond 2^53 (which the generated code cannot hold in a number) would see a server fault
 * instead of its own mistake. The kit gives every method a decoder that never throws and
 * answers such a message with `INVALID_ARGUMENT` and a safe reason (never the bytes, never the
 * decoder's own text):
 *
 * - unary and server-streaming methods: the handler never runs;
 * - client-streaming and bidirectional methods: the handler reads every message before the bad
 *   one (the refusal waits until it has read those already buffered for it), then nothing more:
 *   no later message, no half-close. The call then ends as when a client fails mid-stream:
 *   grpc-js marks the stream `cancelled`, emits `'cancelled'` and destroys it, with no `'end'`
 *   (a `for await` loop over it throws `ERR_STREAM_PREMATURE_CLOSE`). So
 *   `AuditService/AppendBatch`, which appends only at the end of its stream, appends none of
 *   the batch, and Envoy's `StreamAccessLogs`, which appends message by message, keeps the
 *   entries of the messages before the bad one. A bidirectional handler's `'error'` listeners
 *   (and a `for await` loop over it) also see the refusal status: grpc-js ends a response
 *   stream through that event.
 *
 * Once a request stream is refused, whatever its handler does next is harmless: its callback
 * is ignored, its writes are dropped (their callbacks get an error), `end()` does nothing more
 * and an `'error'` it emits changes no status. A handler that already answered keeps its own
 * answer: the bad message is only withheld from it. (A handler that stops reading, or destroys
 * its stream while responses are still being sent, leaves the call to its deadline, as it
 * would without this module.)
 */
import type { Duplex } from 'node:stream';
import {
  Metadata,
  status,
  type ServerDuplexStream,
  type ServerErrorResponse,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type UntypedHandleCall,
  type UntypedServiceImplementation,
  type sendUnaryData,
} from '@grpc/grpc-js';

const UNDECODABLE = Symbol('bulwark.undecodable-request');

interface Undecodable {
  [UNDECODABLE]: string;
}

function reasonOf(err: unknown): string {
  const message = err instanceof Error ? err.message : '';
  return /MAX_SAFE_INTEGER|MIN_SAFE_INTEGER/.test(message)
    ? 'request does not decode: an integer field is beyond ±(2^53 - 1)'
    : 'request does not decode (malformed protobuf)';
}

function isUndecodable(request: unknown): request is Undecodable {
  return typeof request === 'object' && request !== null && UNDECODABLE in request;
}

function tolerant(decode: (bytes: Buffer) => unknown): (bytes: Buffer) => unknown {
  return (bytes) => {
    try {
      return decode(bytes);
    } catch (err) {
      return { [UNDECODABLE]: reasonOf(err) } satisfies Undecodable;
    }
  };
}

function refusal(details: string): ServerErrorResponse {
  return Object.assign(new Error(details), {
    code: status.INVALID_ARGUMENT,
    details,
    metadata: new Metadata(),
  });
}

function guardUnary(handler: UntypedHandleCall): UntypedHandleCall {
  return (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
    if (isUndecodable(call.request)) {
      callback({
        code: status.INVALID_ARGUMENT,
        details: call.request[UNDECODABLE],
        metadata: new Metadata(),
      });
      return;
    }
    (handler as (c: typeof call, cb: typeof callback) => void)(call, callback);
  };
}

function guardServerStream(handler: UntypedHandleCall): UntypedHandleCall {
  return (call: ServerWritableStream<unknown, unknown>) => {
    // The one request arrives before the handler would start: it simply never starts.
    if (isUndecodable(call.request)) {
      call.emit('error', refusal(call.request[UNDECODABLE]));
      return;
    }
    (handler as (c: typeof call) => void)(call);
  };
}

/**
 * Runs `refuse` at the stream's first undecodable message, which, like every message and the
 * half-close after it, never reaches the handler. grpc-js hands each decoded message to the
 * handler through `stream.push`, so that is the one place to look: one property read per
 * message, nothing allocated.
 */
function stopAtUndecodable(stream: Duplex, refuse: (details: string) => void): void {
  const push = stream.push;
  stream.push = function (this: Duplex, chunk: unknown, encoding?: BufferEncoding) {
    const reason = (chunk as Partial<Undecodable> | null)?.[UNDECODABLE];
    if (reason === undefined) return push.call(this, chunk, encoding);
    // Not pushing leaves the stream "reading", so it asks grpc-js for nothing more.
    stream.push = () => false;
    afterBuffered(stream, () => refuse(reason));
    return false;
  };
}

/**
 * Runs `then` once the handler has read every message already buffered in `stream`. The
 * stream reads ahead of its handler, and the refusal ends in grpc-js destroying it, which
 * would drop good messages the handler has not read yet. Every way of consuming a stream
 * (`'data'`, async iteration, `read()`) goes through `read`.
 */
function afterBuffered(stream: Duplex, then: () => void): void {
  if (stream.readableLength === 0) {
    then();
    return;
  }
  const read = stream.read;
  stream.read = function (this: Duplex, size?: number) {
    const chunk: unknown = read.call(this, size);
    if (this.readableLength === 0) {
      stream.read = read;
      then();
    }
    return chunk;
  };
}

/**
 * Makes what a handler does with `stream` after a refusal harmless. Left alone, a write after
 * the refusal ended the stream would destroy it before grpc-js sent the status (the client
 * would wait for its deadline), and an `'error'` the handler emits would replace the status.
 * Returns the stream's own `emit`, for the refusal itself.
 */
function seal(stream: Duplex): Duplex['emit'] {
  const emit = stream.emit;
  stream.write = (_chunk: unknown, encoding?: unknown, callback?: unknown) => {
    const done = typeof encoding === 'function' ? encoding : callback;
    if (typeof done === 'function')
      process.nextTick(done as (err: Error) => void, new Error('the call was refused'));
    return false;
  };
  stream.emit = function (this: Duplex, event: string | symbol, ...args: unknown[]) {
    return event === 'error' || emit.call(this, event, ...args);
  };
  return emit;
}

function guardClientStream(handler: UntypedHandleCall): UntypedHandleCall {
  return (call: ServerReadableStream<unknown, unknown>, callback: sendUnaryData<unknown>) => {
    let answered = false;
    const answer: sendUnaryData<unknown> = (err, value, trailer, flags) => {
      if (answered) return;
      answered = true;
      callback(err, value, trailer, flags);
    };
    // grpc-js builds a client stream as a Duplex (it is typed as Readable only).
    const stream = call as unknown as Duplex;
    stopAtUndecodable(stream, (details) => {
      if (answered) return;
      seal(stream);
      answer(refusal(details));
    });
    (handler as (c: typeof call, cb: typeof callback) => void)(call, answer);
  };
}

function guardBidiStream(handler: UntypedHandleCall): UntypedHandleCall {
  return (call: ServerDuplexStream<unknown, unknown>) => {
    const stream = call as unknown as Duplex;
    stopAtUndecodable(stream, (details) => {
      // A handler that ended its side already chose the call's status.
      if (stream.writableEnded) return;
      const emit = seal(stream);
      // grpc-js ends a response stream on 'error', with that error as the call's status.
      emit.call(stream, 'error', refusal(details));
    });
    (handler as (c: typeof call) => void)(call);
  };
}

/**
 * Wraps every method of a service so that an undecodable request message reaches no handler
 * and is refused with `INVALID_ARGUMENT` (see the module comment for request streams).
 * `createMeshServer` applies it to every service added to it.
 *
 * @example
 * ```ts
 * grpcServer.addService(...refuseUndecodable(AuditServiceService, implementation));
 * ```
 */
export function refuseUndecodable(
  definition: ServiceDefinition,
  implementation: UntypedServiceImplementation,
): [ServiceDefinition, UntypedServiceImplementation] {
  const wrappedDefinition: Record<string, ServiceDefinition[string]> = { ...definition };
  const wrappedImplementation: UntypedServiceImplementation = { ...implementation };
  for (const [name, method] of Object.entries(definition)) {
    const handler = implementation[name];
    if (typeof handler !== 'function') continue;
    wrappedDefinition[name] = {
      ...method,
      requestDeserialize: tolerant(method.requestDeserialize),
    };
    wrappedImplementation[name] = method.requestStream
      ? method.responseStream
        ? guardBidiStream(handler)
        : guardClientStream(handler)
      : method.responseStream
        ? guardServerStream(handler)
        : guardUnary(handler);
  }
  return [wrappedDefinition, wrappedImplementation];
}
