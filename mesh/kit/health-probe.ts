import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';
import { Client, credentials, type ServiceError } from '@grpc/grpc-js';
import type { TlsFiles } from './tls-files.ts';

// A probe runs every few seconds inside the service's container and counts against its memory
// limit, so it stays light: grpc-js and node:crypto only (no x509 library, no generated
// code; about half the memory of a full mesh client). The two messages are one field each.
// The same path as `HEALTH_CHECK_PATH` in server.ts (importing it would load the whole kit).
const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'] as const;

/** `grpc.health.v1.HealthCheckRequest { string service = 1; }` */
function encodeRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  if (name.length === 0) return Buffer.alloc(0);
  if (name.length > 127) throw new RangeError('service name too long for a probe');
  return Buffer.concat([Buffer.from([0x0a, name.length]), name]);
}

/** `grpc.health.v1.HealthCheckResponse { ServingStatus status = 1; }` (0 when absent). */
function decodeResponse(bytes: Buffer): number {
  return bytes[0] === 0x08 && bytes.length >= 2 ? bytes[1]! : 0;
}

const uriSans = (subjectAltName: string | undefined) =>
  (subjectAltName ?? '')
    .split(', ')
    .filter((name) => name.startsWith('URI:'))
    .map((name) => name.slice(4));

/** Options of {@link probeHealth}. */
export interface HealthProbeOptions {
  /** `host:port` of the mesh server, normally `127.0.0.1:<port>` inside its container. */
  address: string;
  /** The server's own certificate, key and trust bundle: the probe calls as the server itself. */
  tls: TlsFiles;
  /** Service to ask about; default `''`, the whole server. */
  service?: string;
  /** Deadline of the call. Default 2000 ms. */
  timeoutMs?: number;
}

/** What a probe saw: `SERVING`, or why not (a status name or a gRPC error; never key material). */
export type HealthProbeResult =
  { serving: true; status: 'SERVING' } | { serving: false; status: string };

/**
 * Asks a mesh server's `grpc.health.v1.Health/Check` over mTLS, presenting the server's own
 * X.509-SVID (the one identity besides its peers that the server lets ask, and only this) and
 * expecting the server to present that same SPIFFE ID. For container probes.
 *
 * @example
 * ```ts
 * const result = await probeHealth({
 *   address: '127.0.0.1:7442',
 *   tls: { certFile: '/run/secrets/audit.crt', keyFile: '/run/secrets/audit.key', caFile: '/run/secrets/ca.crt' },
 * });
 * process.exit(result.serving ? 0 : 1);
 * ```
 */
export async function probeHealth(options: HealthProbeOptions): Promise<HealthProbeResult> {
  const cert = readFileSync(options.tls.certFile);
  const own = uriSans(new X509Certificate(cert).subjectAltName);
  if (own.length !== 1 || !own[0]!.startsWith('spiffe://')) {
    return { serving: false, status: `${options.tls.certFile} is not an X.509-SVID` };
  }
  const self = own[0]!;
  const checkServerIdentity = (_host: string, peer: PeerCertificate) => {
    const ids = uriSans(peer.subjectaltname);
    return ids.length === 1 && ids[0] === self
      ? undefined
      : new Error(`server presented ${ids.join(', ') || 'no SPIFFE ID'}, expected ${self}`);
  };
  const client = new Client(
    options.address,
    credentials.createSsl(
      readFileSync(options.tls.caFile),
      readFileSync(options.tls.keyFile),
      cert,
      { checkServerIdentity },
    ),
    // Mesh certificates carry localhost; an IP is no valid TLS server name.
    { 'grpc.ssl_target_name_override': 'localhost' },
  );
  try {
    return await new Promise<HealthProbeResult>((resolve) => {
      const deadline = Date.now() + (options.timeoutMs ?? 2000);
      client.makeUnaryRequest(
        HEALTH_CHECK_PATH,
        encodeRequest,
        decodeResponse,
        options.service ?? '',
        { deadline },
        (err: ServiceError | null, status?: number) => {
          if (err) resolve({ serving: false, status: `${err.code} ${err.details}` });
          else if (status === 1) resolve({ serving: true, status: 'SERVING' });
          else resolve({ serving: false, status: SERVING_STATUS[status ?? 0] ?? 'UNKNOWN' });
        },
      );
    });
  } finally {
    client.close();
  }
}
