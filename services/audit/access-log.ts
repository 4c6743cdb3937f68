/**
 * Envoy `envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs`: turns the gateway's
 * HTTP access-log entries into `access-log` audit records. Envoy's protos are loaded from
 * `@grpc/grpc-js-xds` at run time.
 *
 * Envoy streams forever and ignores the response, so each message is appended as it arrives;
 * entries that fail validation are counted and logged, never allowed to end the stream.
 */
import type { ServerReadableStream, sendUnaryData } from '@grpc/grpc-js';
import { loadEnvoyGrpcService, type EnvoyGrpcService } from '../../mesh/envoy/grpc-services.ts';
import { EventType, Outcome, type AuditRecord } from '../../gen/bulwark/audit/v1/audit.ts';

/** The AccessLogService definition and generic client class (cached). */
export function loadAccessLogService(): EnvoyGrpcService {
  return loadEnvoyGrpcService(
    'envoy/service/accesslog/v3/als.proto',
    'envoy.service.accesslog.v3.AccessLogService',
  );
}

interface Timestamp {
  seconds?: string | number;
  nanos?: number;
}
interface ProtoValue {
  stringValue?: string;
}
/** The parts of `envoy.data.accesslog.v3.HTTPAccessLogEntry` that become a record. */
export interface HttpAccessLogEntry {
  commonProperties?: {
    downstreamRemoteAddress?: { socketAddress?: { address?: string } };
    downstreamDirectRemoteAddress?: { socketAddress?: { address?: string } };
    startTime?: Timestamp;
    timeToLastDownstreamTxByte?: Timestamp;
    upstreamCluster?: string;
    tlsProperties?: { peerCertificateProperties?: { subjectAltName?: Array<{ uri?: string }> } };
    metadata?: { filterMetadata?: Record<string, { fields?: Record<string, ProtoValue> }> };
    streamId?: string;
  };
  request?: {
    requestMethod?: string;
    authority?: string;
    path?: string;
    requestId?: string;
    requestHeaders?: Record<string, string>;
  };
  response?: { responseCode?: { value?: number }; responseCodeDetails?: string };
}

export interface StreamAccessLogsMessage {
  identifier?: { logName?: string };
  httpLogs?: { logEntry?: HttpAccessLogEntry[] };
}

function clip(s: string | undefined, max = 512): string {
  if (!s) return '';
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?').slice(0, max);
}

function toMs(t: Timestamp | undefined): number | undefined {
  if (!t || t.seconds === undefined) return undefined;
  return Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6);
}

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

/** Maps one HTTP access-log entry to an audit record. */
export function accessLogEntryToRecord(entry: HttpAccessLogEntry): AuditRecord {
  const common = entry.commonProperties ?? {};
  const req = entry.request ?? {};
  const code = entry.response?.responseCode?.value ?? 0;
  const jwt = common.metadata?.filterMetadata?.['envoy.filters.http.jwt_authn']?.fields;
  const jwtPayload = jwt ? Object.values(jwt)[0] : undefined;
  const claims = (
    jwtPayload as { structValue?: { fields?: Record<string, ProtoValue> } } | undefined
  )?.structValue?.fields;
  const peer = common.tlsProperties?.peerCertificateProperties?.subjectAltName?.find((s) =>
    s.uri?.startsWith('spiffe://'),
  )?.uri;
  const sub = claims?.sub?.stringValue;
  const address =
    common.downstreamRemoteAddress?.socketAddress?.address ??
    common.downstreamDirectRemoteAddress?.socketAddress?.address;
  const start = toMs(common.startTime);
  const d = common.timeToLastDownstreamTxByte;
  const durationUs =
    d?.seconds !== undefined
      ? Number(d.seconds) * 1e6 + Math.floor((d.nanos ?? 0) / 1000)
      : undefined;
  const trace = TRACEPARENT.exec(req.requestHeaders?.traceparent ?? '');
  // The query string can carry secrets (tokens in URLs): never record it.
  const path = clip((req.path ?? '').split('?')[0], 512);
  const attributes: Record<string, string> = {};
  if (req.authority) attributes.authority = clip(req.authority, 256);
  if (common.upstreamCluster) attributes.upstream_cluster = clip(common.upstreamCluster, 256);
  if (req.requestId) attributes.request_id = clip(req.requestId, 128);
  return {
    id: '',
    time: start !== undefined ? new Date(start) : undefined,
    service: 'gateway',
    eventType: EventType.EVENT_TYPE_ACCESS_LOG,
    actor: {
      sub: clip(sub, 256) || (peer ? '' : 'anonymous'),
      org: clip(claims?.org?.stringValue, 256),
      clientId: clip(claims?.client_id?.stringValue, 256),
      peerSpiffeId: peer && /^spiffe:\/\/[^/\s]+\/\S*$/.test(peer) ? clip(peer, 512) : '',
      sourceAddress: address ?? '',
    },
    action: `${clip(req.requestMethod, 16) || 'HTTP'} ${path}`.trim(),
    target: undefined,
    outcome:
      code > 0 && code < 400
        ? Outcome.OUTCOME_SUCCESS
        : code === 401 || code === 403 || code === 429
          ? Outcome.OUTCOME_DENIED
          : Outcome.OUTCOME_ERROR,
    reason: clip(
      `http ${code}${entry.response?.responseCodeDetails ? ` ${entry.response.responseCodeDetails}` : ''}`,
      256,
    ),
    policyRevision: '',
    inputDigest: '',
    outputDigest: '',
    latencyUs: durationUs !== undefined && durationUs > 0 ? durationUs : 0,
    traceId: trace?.[1] && !/^0+$/.test(trace[1]) ? trace[1] : '',
    spanId: trace?.[2] && !/^0+$/.test(trace[2]) ? trace[2] : '',
    attributes,
    submittedBy: '',
  };
}

export interface AccessLogSink {
  /** Appends the records of one message; resolves when durable. */
  appendRecords(records: AuditRecord[], gateway: string): Promise<void>;
  /** May this peer stream access logs? */
  allowed(spiffeId: string | undefined): boolean;
  onRejected(reason: string): void;
}

/** grpc-js handler for StreamAccessLogs. */
export function streamAccessLogsHandler(
  sink: AccessLogSink,
  peerOf: (call: ServerReadableStream<unknown, unknown>) => string | undefined,
) {
  return (
    call: ServerReadableStream<StreamAccessLogsMessage, object>,
    callback: sendUnaryData<object>,
  ) => {
    const peer = peerOf(call as ServerReadableStream<unknown, unknown>);
    if (!sink.allowed(peer)) {
      callback({ code: 7, details: 'this peer may not stream access logs' });
      return;
    }
    let chain = Promise.resolve();
    call.on('data', (msg: StreamAccessLogsMessage) => {
      const entries = msg.httpLogs?.logEntry ?? [];
      if (entries.length === 0) return;
      const records = entries.map((e) => accessLogEntryToRecord(e));
      chain = chain
        .then(() => sink.appendRecords(records, peer ?? ''))
        .catch((err: unknown) => sink.onRejected((err as Error).message));
    });
    call.on('end', () => {
      void chain.then(() => callback(null, {}));
    });
    call.on('error', () => undefined);
  };
}
