/**
 * A lean gRPC caller for load generation: HTTP/2 over mutual TLS with `node:http2`, unary
 * calls whose request bodies are encoded once up front (as Envoy, a C++ proxy, would send
 * them). It keeps the load generator's own CPU per call small, so a benchmark on a 2-core
 * machine measures the server rather than grpc-js's client stack.
 */
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { readFileSync } from 'node:fs';
import { spiffeIdOf } from '../../mesh/ca/index.ts';
import type { TlsFiles } from '../../mesh/kit/index.ts';

export interface RawGrpcCaller {
  /**
   * One unary call with a ready gRPC frame (see {@link grpcFrame}); `done` gets the
   * `grpc-status` (or -1 on a transport error) and the response message bytes.
   */
  call(path: string, frame: Buffer, done: (status: number, message: Buffer) => void): void;
  close(): void;
}

/** The 5-byte gRPC message prefix (uncompressed) followed by the message. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/**
 * Connects to a mesh server with a client certificate and checks that the server's
 * certificate names `expectedServer` (its SPIFFE ID).
 *
 * @example
 * ```ts
 * const caller = await connectRawGrpc('127.0.0.1:7000', pki.services.gateway!, policySpiffeId);
 * caller.call('/envoy.service.auth.v3.Authorization/Check', frame, (status, body) => {});
 * ```
 */
export async function connectRawGrpc(
  address: string,
  tls: TlsFiles,
  expectedServer: string,
): Promise<RawGrpcCaller> {
  const session: ClientHttp2Session = connect(`https://${address}`, {
    ca: readFileSync(tls.caFile),
    cert: readFileSync(tls.certFile),
    key: readFileSync(tls.keyFile),
    checkServerIdentity: (_host, peer) =>
      spiffeIdOf(peer) === expectedServer
        ? undefined
        : new Error(`server is not ${expectedServer}`),
  });
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve());
    session.once('error', reject);
  });
  session.on('error', () => {});
  const headers = (path: string) => ({
    [constants.HTTP2_HEADER_METHOD]: 'POST',
    [constants.HTTP2_HEADER_PATH]: path,
    [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
    [constants.HTTP2_HEADER_TE]: 'trailers',
  });
  return {
    call(path, frame, done) {
      const stream = session.request(headers(path), { endStream: false });
      const chunks: Buffer[] = [];
      let status = -1;
      stream.on('response', (h) => {
        // A trailers-only response carries the status in the headers.
        if (h['grpc-status'] !== undefined) status = Number(h['grpc-status']);
      });
      stream.on('trailers', (t) => {
        if (t['grpc-status'] !== undefined) status = Number(t['grpc-status']);
      });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', () => {});
      stream.on('close', () => {
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        done(status, body.length >= 5 ? body.subarray(5) : Buffer.alloc(0));
      });
      stream.end(frame);
    },
    close: () => session.close(),
  };
}
