import { status, type Metadata } from '@grpc/grpc-js';
import type { TextMapGetter, TextMapSetter } from '@opentelemetry/api';

/** `'/bulwark.audit.v1.AuditService/Append'` → service and method parts. */
export function splitMethodPath(path: string): { service: string; method: string } {
  const trimmed = path.startsWith('/') ? path.slice(1) : path;
  const slash = trimmed.lastIndexOf('/');
  if (slash < 0) return { service: 'unknown', method: trimmed || 'unknown' };
  return { service: trimmed.slice(0, slash), method: trimmed.slice(slash + 1) };
}

// The names Prometheus dashboards built for go-grpc-prometheus expect in `grpc_code`.
const CODE_NAMES: Record<number, string> = {
  [status.OK]: 'OK',
  [status.CANCELLED]: 'Canceled',
  [status.UNKNOWN]: 'Unknown',
  [status.INVALID_ARGUMENT]: 'InvalidArgument',
  [status.DEADLINE_EXCEEDED]: 'DeadlineExceeded',
  [status.NOT_FOUND]: 'NotFound',
  [status.ALREADY_EXISTS]: 'AlreadyExists',
  [status.PERMISSION_DENIED]: 'PermissionDenied',
  [status.RESOURCE_EXHAUSTED]: 'ResourceExhausted',
  [status.FAILED_PRECONDITION]: 'FailedPrecondition',
  [status.ABORTED]: 'Aborted',
  [status.OUT_OF_RANGE]: 'OutOfRange',
  [status.UNIMPLEMENTED]: 'Unimplemented',
  [status.INTERNAL]: 'Internal',
  [status.UNAVAILABLE]: 'Unavailable',
  [status.DATA_LOSS]: 'DataLoss',
  [status.UNAUTHENTICATED]: 'Unauthenticated',
};

/** gRPC status code → the label value used in `grpc_code` (`'OK'`, `'PermissionDenied'`). */
export function grpcCodeName(code: number): string {
  return CODE_NAMES[code] ?? `Code(${code})`;
}

/** gRPC call type label (`grpc_type`), as in go-grpc-prometheus. */
export function grpcType(requestStream: boolean, responseStream: boolean): string {
  if (requestStream && responseStream) return 'bidi_stream';
  if (requestStream) return 'client_stream';
  if (responseStream) return 'server_stream';
  return 'unary';
}

/** Reads W3C trace context headers from gRPC metadata. */
export const metadataGetter: TextMapGetter<Metadata> = {
  keys: (carrier) => Object.keys(carrier.getMap()),
  get: (carrier, key) => {
    const values = carrier.get(key);
    if (values.length === 0) return undefined;
    // One value is the rule: no array for it.
    return values.length === 1 ? String(values[0]) : values.map(String);
  },
};

/** Writes W3C trace context headers into gRPC metadata (replacing any caller-set value). */
export const metadataSetter: TextMapSetter<Metadata> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

/** `'ipv4:127.0.0.1:5000'`, `'127.0.0.1:5000'`, `'[::1]:5000'` → address and port. */
export function parsePeer(peer: string): { address?: string; port?: number } {
  const bare = peer.replace(/^ipv[46]:/, '');
  const match = /^\[?([^\]]*?)\]?:(\d+)$/.exec(bare);
  if (!match) return bare && bare !== 'unknown' ? { address: bare } : {};
  return { address: match[1], port: Number(match[2]) };
}
