/**
 * Client connections for the `bulwark model` and `bulwark infer` commands: TLS to the inference
 * service (the server must present `spiffe://<trust-domain>/svc/inference` from the mesh CA),
 * optionally with a client certificate for certificate-bound tokens, and the bearer token as
 * call metadata.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { spiffeIdOf } from '../../../mesh/ca/index.ts';

export interface ConnectOptions {
  /** `host:port` of the inference service. */
  address: string;
  /** PEM file of the mesh CA. */
  caFile: string;
  /** Client certificate and key files (for certificate-bound tokens). */
  certFile?: string;
  keyFile?: string;
  /** SPIFFE ID the server must present. Default `spiffe://bulwark.local/svc/inference`. */
  expectedServer?: string;
  /** Access token (audience `urn:bulwark:inference`). */
  token: string;
  /** Per-call deadline. Default 10000 ms. */
  deadlineMs?: number;
}

export function channelCredentials(o: ConnectOptions): grpc.ChannelCredentials {
  const expected = o.expectedServer ?? 'spiffe://bulwark.local/svc/inference';
  if ((o.certFile === undefined) !== (o.keyFile === undefined)) {
    throw new Error('--cert and --key go together');
  }
  return grpc.credentials.createSsl(
    readFileSync(o.caFile),
    o.keyFile ? readFileSync(o.keyFile) : null,
    o.certFile ? readFileSync(o.certFile) : null,
    {
      checkServerIdentity: (_host, peer) => {
        try {
          const id = spiffeIdOf(peer);
          return id === expected ? undefined : new Error(`server is ${id}, expected ${expected}`);
        } catch (err) {
          return err as Error;
        }
      },
    },
  );
}

/**
 * Channel options for the inference address: a loopback IP target sends `localhost` as the
 * TLS server name (mesh certificates carry it; an IP as SNI is not allowed by RFC 6066 and
 * makes Node warn, DEP0123). The server is still checked by its SPIFFE ID.
 *
 * @example
 * ```ts
 * new GRPCInferenceServiceClient(address, channelCredentials(conn), channelOptions(address));
 * ```
 */
export function channelOptions(address: string): Record<string, string> {
  const loopback = /^(127\.\d+\.\d+\.\d+|\[::1\]):\d+$/.test(address);
  return loopback ? { 'grpc.ssl_target_name_override': 'localhost' } : {};
}

export function bearerMetadata(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

/** Calls one unary method and resolves with its response. */
export function unary<Res>(
  client: grpc.Client,
  method: string,
  request: unknown,
  o: Pick<ConnectOptions, 'token' | 'deadlineMs'>,
): Promise<Res> {
  const fn = (client as unknown as Record<string, unknown>)[method] as (
    req: unknown,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res: Res) => void,
  ) => void;
  return new Promise((resolve, reject) =>
    fn.call(
      client,
      request,
      bearerMetadata(o.token),
      { deadline: Date.now() + (o.deadlineMs ?? 10_000) },
      (err, res) => (err ? reject(err) : resolve(res)),
    ),
  );
}
