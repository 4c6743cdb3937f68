/**
 * Reads the audit log back through the audit service's own API (Query, GetCheckpoint, Verify),
 * as the test's reader workload, and offline from its database file: what the log holds
 * after a fault, not what the caller believes.
 */
import * as grpc from '@grpc/grpc-js';
import {
  EventType,
  Outcome,
  type AuditServiceClient,
  type GetCheckpointResponse,
  type LogEntry,
  type QueryRequest,
  type VerifyResponse,
} from '../../../gen/bulwark/audit/v1/audit.ts';
import { parseVerifierKey } from '../../../services/audit/note.ts';
import { openSqliteStore } from '../../../services/audit/store/sqlite-store.ts';
import { verifyStore, type VerifyResult } from '../../../services/audit/verify.ts';

const CALL_MS = 30_000;

function unary<Req, Res>(
  fn: (
    req: Req,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: grpc.requestCallback<Res>,
  ) => unknown,
  req: Req,
): Promise<Res> {
  return new Promise((resolve, reject) =>
    fn(req, new grpc.Metadata(), { deadline: Date.now() + CALL_MS }, (err, res) =>
      err || !res ? reject(err ?? new Error('no response')) : resolve(res),
    ),
  );
}

/** Every `inference` record with outcome success, in leaf order (all pages). */
export function successfulInferences(client: AuditServiceClient): Promise<LogEntry[]> {
  return inferenceRecords(client, Outcome.OUTCOME_SUCCESS);
}

/** Every `inference` record with the given outcome, in leaf order (all pages). */
export async function inferenceRecords(
  client: AuditServiceClient,
  outcome: Outcome,
): Promise<LogEntry[]> {
  const entries: LogEntry[] = [];
  let pageToken = '';
  do {
    const request: QueryRequest = {
      startTime: undefined,
      endTime: undefined,
      actorSub: '',
      org: '',
      modelName: '',
      eventType: EventType.EVENT_TYPE_INFERENCE,
      outcome,
      traceId: '',
      startIndex: 0,
      pageSize: 1000,
      pageToken,
    };
    const page = await unary(client.query.bind(client), request);
    entries.push(...page.entries);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return entries;
}

export function verifyLog(client: AuditServiceClient): Promise<VerifyResponse> {
  return unary(client.verify.bind(client), {});
}

/** Signs (or returns) the latest checkpoint: the signed note and its tree size. */
export function checkpoint(client: AuditServiceClient): Promise<GetCheckpointResponse> {
  return unary(client.getCheckpoint.bind(client), {});
}

/**
 * Verifies the log offline, as an independent reader: opens the SQLite file read-only and
 * re-checks every leaf and stored checkpoint with the verifier key pinned by the caller, and
 * that the log extends `trusted` (a checkpoint taken earlier, e.g. before a crash).
 */
export async function verifyOffline(
  file: string,
  log: { origin: string; verifierKey: string },
  trusted: string,
): Promise<VerifyResult> {
  const store = openSqliteStore({ path: file, readOnly: true });
  try {
    return await verifyStore(store, {
      verifier: parseVerifierKey(log.verifierKey),
      origin: log.origin,
      trustedCheckpoint: trusted,
      // The service is still running: records (e.g. policy decisions) may land meanwhile.
      checkExtraRows: false,
    });
  } finally {
    await store.close();
  }
}

/** The log's identity as the audit service announces it in its `ready` log line. */
export function announcedLog(readyOutput: string): { origin: string; verifierKey: string } {
  const line = /^.*"msg":"audit service ready".*$/m.exec(readyOutput)?.[0] ?? '';
  const field = (name: string) => new RegExp(`"${name}":"([^"]+)"`).exec(line)?.[1] ?? '';
  return { origin: field('origin'), verifierKey: field('verifierKey') };
}
