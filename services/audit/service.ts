/**
 * `bulwark.audit.v1.AuditService` and Envoy's AccessLogService on the mesh kit.
 *
 * Who may do what (on top of the mesh server's peer allow-list, checked at the first call):
 * - append (Append, AppendBatch): peers in `appenders` (default: every peer the server admits);
 * - read (Query, Verify, and the leaf data in GetInclusionProof): callers the `readAuthorizer`
 *   grants `read` on `audit:log` — in production the policy service decides
 *   (`policyReadAuthorizer`: bearer token with `audit:read`, or the workload's SPIFFE ID);
 *   `readers` are extra SPIFFE IDs that always read. A grant names one organisation (a query
 *   is narrowed to it, another organisation is refused) or every organisation;
 * - checkpoints and proof hashes: every admitted peer (they reveal no record);
 * - StreamAccessLogs: peers in `accessLogPeers` (default: the gateway).
 *
 * @example
 * ```ts
 * const audit = await createAuditService({ store: openSqliteStore({ path }), signingKeyFile, logger });
 * const server = createMeshServer({ tls, allowedPeers, logger });
 * audit.addTo(server);
 * await server.listen();
 * ```
 */
import type { KeyObject } from 'node:crypto';
import {
  type Metadata,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServiceDefinition,
  type UntypedServiceImplementation,
  type sendUnaryData,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { auditMetrics } from './metrics.ts';
import {
  AuditServiceService,
  type AppendBatchRequest,
  type AppendBatchResponse,
  type AuditServiceServer,
  type QueryRequest,
  type Receipt,
} from '../../gen/bulwark/audit/v1/audit.ts';
import { toServiceError } from '../../mesh/errors.ts';
import {
  compileAllowList,
  peerIdentity,
  unaryHandler,
  type PeerAllowList,
} from '../../mesh/kit/index.ts';
import { loadAccessLogService, streamAccessLogsHandler } from './access-log.ts';
import {
  allowListReadAuthorizer,
  ALL_ORGS,
  firstGrant,
  grantCovers,
  type ReadAuthorizer,
  type ReadGrant,
} from './read-authorizer.ts';
import { AuditError } from './errors.ts';
import { openAuditLog, type AppendReceipt, type AuditLog } from './log.ts';
import { EVENT_TYPE_NAMES, leafToRecord, OUTCOME_NAMES, type RecordLimits } from './record.ts';
import { loadOrCreateSigningKey } from './signing-key.ts';
import type { AuditStore } from './store/types.ts';

export interface AuditServiceOptions {
  store: AuditStore;
  /** The checkpoint key, or a file to read it from (created with mode 0600 when missing). */
  signingKey?: KeyObject;
  signingKeyFile?: string;
  /** Checkpoint origin and key name. Default `<trustDomain>/audit`. */
  origin?: string;
  /** Default `bulwark.local`. */
  trustDomain?: string;
  /** Keeps the last signed checkpoint outside the database. Default `<signingKeyFile>.checkpoint`. */
  checkpointStatePath?: string;
  logger: Logger;
  /** Peers that may append. Default: every peer the server admits. */
  appenders?: PeerAllowList;
  /**
   * Who may read, and which organisations: `policyReadAuthorizer(...)` in production. Default:
   * nobody but `readers`.
   */
  readAuthorizer?: ReadAuthorizer;
  /** SPIFFE IDs that read every organisation, asked before `readAuthorizer`. Default none. */
  readers?: PeerAllowList;
  /** Peers that may stream Envoy access logs. Default `spiffe://<trustDomain>/svc/gateway`. */
  accessLogPeers?: PeerAllowList;
  /** How often a checkpoint is signed while the log grows. Default 1000 ms; 0 disables. */
  checkpointIntervalMs?: number;
  /** Group-commit window in ms (0-2); see `AuditLogOptions.batchWindowMs` (no timer is used). */
  batchWindowMs?: number;
  /** Most records in one commit. Default 1024. */
  maxBatch?: number;
  /** Most records in one AppendBatch stream. Default 10,000. */
  maxStreamRecords?: number;
  limits?: RecordLimits;
  /** Verify the whole log before serving. Default true. */
  verifyOnStart?: boolean;
  clock?: () => Date;
  /** Metrics registry for the audit metrics (see `metrics.ts`). Default: none. */
  registry?: Registry;
}

export interface ServiceHost {
  addService(definition: ServiceDefinition, implementation: UntypedServiceImplementation): void;
}

export interface AuditService {
  readonly log: AuditLog;
  readonly implementation: AuditServiceServer;
  readonly accessLog: {
    definition: ServiceDefinition;
    implementation: UntypedServiceImplementation;
  };
  /** Adds both services to a server the caller made. */
  addTo(server: ServiceHost): void;
  /** Stops checkpointing, commits what is queued, signs a last checkpoint, closes the store. */
  close(): Promise<void>;
}

const PAGE_DEFAULT = 100;
const PAGE_MAX = 1000;

function encodeToken(next: number): string {
  return Buffer.from(`v1:${next}`).toString('base64url');
}

function decodeToken(token: string): number {
  const m = /^v1:(\d{1,16})$/.exec(Buffer.from(token, 'base64url').toString('utf8'));
  const n = m ? Number(m[1]) : Number.NaN;
  if (!Number.isSafeInteger(n))
    throw new AuditError('ERR_AUDIT_INVALID_REQUEST', 'page_token is not valid');
  return n;
}

function toReceipt(r: AppendReceipt, origin: string): Receipt {
  return {
    id: r.id,
    leafIndex: r.leafIndex,
    treeSize: r.treeSize,
    leafHash: Buffer.from(r.leafHash),
    logOrigin: origin,
  };
}

/** Creates the audit service over a store: opens (and checks) the log, ready to attach. */
export async function createAuditService(options: AuditServiceOptions): Promise<AuditService> {
  const trustDomain = options.trustDomain ?? 'bulwark.local';
  const o = {
    origin: `${trustDomain}/audit`,
    checkpointIntervalMs: 1000,
    maxStreamRecords: 10_000,
    accessLogPeers: [`spiffe://${trustDomain}/svc/gateway`] as PeerAllowList,
    ...options,
  };
  const { logger } = o;
  if (!o.signingKey && !o.signingKeyFile)
    throw new AuditError('ERR_AUDIT_KEY', 'signingKey or signingKeyFile is required');
  let signingKey = o.signingKey;
  if (!signingKey) {
    const loaded = loadOrCreateSigningKey(o.signingKeyFile as string);
    if (loaded.created)
      logger.info({ file: o.signingKeyFile }, 'created a new checkpoint signing key');
    signingKey = loaded.key;
  }
  const checkpointStatePath =
    o.checkpointStatePath ?? (o.signingKeyFile ? `${o.signingKeyFile}.checkpoint` : undefined);
  const log = await openAuditLog({
    store: o.store,
    signingKey,
    origin: o.origin,
    ...(checkpointStatePath ? { checkpointStatePath } : {}),
    ...(o.batchWindowMs !== undefined ? { batchWindowMs: o.batchWindowMs } : {}),
    ...(o.maxBatch !== undefined ? { maxBatch: o.maxBatch } : {}),
    ...(o.limits ? { limits: o.limits } : {}),
    ...(o.verifyOnStart !== undefined ? { verifyOnStart: o.verifyOnStart } : {}),
    ...(o.clock ? { clock: o.clock } : {}),
    ...(o.registry ? { onCommit: auditMetrics(o.registry) } : {}),
    logger,
  });
  if (log.integrityFailure())
    logger.error(
      { reason: log.integrityFailure() },
      'audit log failed its integrity check; refusing to append or sign',
    );

  const mayAppend = o.appenders ? compileAllowList(o.appenders) : () => true;
  const mayStream = compileAllowList(o.accessLogPeers);
  const readAuthorizer = o.readAuthorizer
    ? o.readers?.length
      ? firstGrant(allowListReadAuthorizer(o.readers), o.readAuthorizer)
      : o.readAuthorizer
    : allowListReadAuthorizer(o.readers ?? []);

  type Call = Parameters<typeof peerIdentity>[0] & { metadata: Metadata };
  const callerOf = (call: Parameters<typeof peerIdentity>[0]) => peerIdentity(call).spiffeId;
  const requireAppender = (spiffeId: string | undefined) => {
    if (!spiffeId || !mayAppend(spiffeId)) {
      throw new AuditError(
        'ERR_AUDIT_PERMISSION_DENIED',
        'this peer may not append to the audit log',
      );
    }
  };
  /** The read grant of a call about `org` (undefined: every organisation); throws when none. */
  const requireReader = async (call: Call, org: string | undefined): Promise<ReadGrant> => {
    const peer = peerIdentity(call);
    const values = call.metadata.get('authorization');
    let grant: ReadGrant | undefined;
    try {
      grant = await readAuthorizer({
        spiffeId: peer.spiffeId,
        certificateThumbprint: peer.certificateThumbprint,
        // Several authorization values are ambiguous: treat them as a malformed token.
        authorization: values.length === 0 ? undefined : values.length > 1 ? '' : String(values[0]),
        org,
      });
    } catch (err) {
      if (err instanceof AuditError) throw err;
      logger.warn(
        { err: { message: (err as Error).message }, peer: peer.spiffeId },
        'read authorisation failed; denying',
      );
      grant = undefined;
    }
    if (!grant)
      throw new AuditError(
        'ERR_AUDIT_PERMISSION_DENIED',
        'this caller may not read the audit log (audit:read)',
      );
    return grant;
  };
  /** Whether the caller may read a record of `org` (undefined: a record of no organisation). */
  const canRead = (call: Call, org: string | undefined) =>
    requireReader(call, org).then(
      (grant) => grantCovers(grant, org),
      () => false,
    );
  const handlerOptions = { logger };

  const appendBatch = (
    call: ServerReadableStream<AppendBatchRequest, AppendBatchResponse>,
    callback: sendUnaryData<AppendBatchResponse>,
  ) => {
    const spiffeId = callerOf(call);
    try {
      requireAppender(spiffeId);
    } catch (err) {
      callback(toServiceError(err));
      return;
    }
    const records: AppendBatchRequest['record'][] = [];
    let failed = false;
    call.on('data', (msg: AppendBatchRequest) => {
      if (failed) return;
      if (records.length >= o.maxStreamRecords) {
        failed = true;
        callback(
          toServiceError(
            new AuditError(
              'ERR_AUDIT_INVALID_REQUEST',
              `AppendBatch takes at most ${o.maxStreamRecords} records`,
            ),
          ),
        );
        return;
      }
      records.push(msg.record);
    });
    call.on('error', () => {
      failed = true;
    });
    call.on('end', () => {
      if (failed) return;
      log.appendMany(records, spiffeId).then(
        (receipts) => callback(null, { receipts: receipts.map((r) => toReceipt(r, log.origin)) }),
        (err: unknown) => {
          logger.info({ code: (err as AuditError).code }, 'AppendBatch refused');
          callback(toServiceError(err));
        },
      );
    });
  };

  const query = async (call: ServerUnaryCall<QueryRequest, unknown>) => {
    const q = call.request;
    const grant = await requireReader(call, q.org || undefined);
    // Belt and braces: whatever the authorizer said, a grant for X never reads Y.
    if (q.org && !grantCovers(grant, q.org))
      throw new AuditError(
        'ERR_AUDIT_PERMISSION_DENIED',
        `this caller may not read the records of ${q.org}`,
      );
    const org = grant.org === ALL_ORGS ? q.org || undefined : grant.org;
    const pageSize = q.pageSize === 0 ? PAGE_DEFAULT : q.pageSize;
    if (!(pageSize >= 1 && pageSize <= PAGE_MAX))
      throw new AuditError('ERR_AUDIT_INVALID_REQUEST', `page_size must be 1-${PAGE_MAX}`);
    const start = q.pageToken ? decodeToken(q.pageToken) : q.startIndex;
    const eventType = q.eventType
      ? EVENT_TYPE_NAMES[q.eventType as keyof typeof EVENT_TYPE_NAMES]
      : undefined;
    if (q.eventType && !eventType)
      throw new AuditError('ERR_AUDIT_INVALID_REQUEST', 'event_type is unknown');
    const outcome = q.outcome ? OUTCOME_NAMES[q.outcome as keyof typeof OUTCOME_NAMES] : undefined;
    if (q.outcome && !outcome)
      throw new AuditError('ERR_AUDIT_INVALID_REQUEST', 'outcome is unknown');
    const rows = await log.query({
      startIndex: start,
      fromTimeMs: q.startTime?.getTime(),
      toTimeMs: q.endTime?.getTime(),
      actorSub: q.actorSub || undefined,
      org,
      modelName: q.modelName || undefined,
      eventType,
      outcome,
      traceId: q.traceId || undefined,
      limit: pageSize + 1,
    });
    const page = rows.slice(0, pageSize);
    const more = rows.length > pageSize;
    return {
      entries: page.map((r) => ({
        leafIndex: r.index,
        record: leafToRecord(r.data),
        leafData: r.data,
      })),
      nextPageToken: more ? encodeToken((page[page.length - 1]?.index ?? start) + 1) : '',
    };
  };

  const implementation: AuditServiceServer = {
    append: unaryHandler(async (call) => {
      const spiffeId = callerOf(call);
      requireAppender(spiffeId);
      return { receipt: toReceipt(await log.append(call.request.record, spiffeId), log.origin) };
    }, handlerOptions),
    appendBatch,
    query: unaryHandler(query, handlerOptions),
    getCheckpoint: unaryHandler(async () => {
      const cp = await log
        .checkpoint(false)
        .then((c) => (c.size === log.size() ? c : log.checkpoint()));
      return {
        checkpoint: cp.note,
        treeSize: cp.size,
        rootHash: Buffer.from(cp.root),
        origin: log.origin,
        verifierKey: log.verifierKey,
      };
    }, handlerOptions),
    getInclusionProof: unaryHandler(async (call) => {
      const p = await log.inclusionProof(call.request.leafIndex, call.request.treeSize);
      // The record itself only for a reader of its organisation.
      let recordOrg: string | undefined;
      try {
        recordOrg = leafToRecord(p.leaf.data).actor?.org || undefined;
      } catch {
        // Not a readable record (a damaged log): only readers of every organisation get it.
      }
      const reader = await canRead(call, recordOrg);
      return {
        leafIndex: call.request.leafIndex,
        treeSize: p.treeSize,
        hashes: p.hashes.map((h) => Buffer.from(h)),
        leafData: reader ? p.leaf.data : Buffer.alloc(0),
        checkpoint: p.checkpoint ?? '',
      };
    }, handlerOptions),
    getConsistencyProof: unaryHandler(async (call) => {
      const p = await log.consistencyProof(call.request.firstSize, call.request.secondSize);
      return {
        firstSize: p.firstSize,
        secondSize: p.secondSize,
        hashes: p.hashes.map((h) => Buffer.from(h)),
      };
    }, handlerOptions),
    verify: unaryHandler(async (call) => {
      // Any reader: the answer reveals no record.
      await requireReader(call, undefined);
      const r = await log.verify();
      return {
        ok: r.ok,
        treeSize: r.treeSize,
        rootHash: Buffer.from(r.root),
        ...(r.firstBadLeaf !== undefined ? { firstBadLeaf: r.firstBadLeaf } : {}),
        reason: r.reason ?? '',
      };
    }, handlerOptions),
  };

  const als = loadAccessLogService();
  let rejected = 0;
  const accessLog = {
    definition: als.service,
    implementation: {
      streamAccessLogs: streamAccessLogsHandler(
        {
          allowed: (id) => id !== undefined && mayStream(id),
          appendRecords: async (records, gateway) => {
            // One bad entry must not drop the others: append each valid one.
            const results = await Promise.allSettled(records.map((r) => log.append(r, gateway)));
            const bad = results.filter((r) => r.status === 'rejected');
            if (bad.length > 0)
              throw new Error(
                `${bad.length} access-log entries refused: ${(bad[0] as PromiseRejectedResult).reason?.message}`,
              );
          },
          onRejected: (reason) => {
            rejected++;
            logger.warn({ reason, rejected }, 'access-log entries not appended');
          },
        },
        (call) => callerOf(call),
      ),
    } as UntypedServiceImplementation,
  };

  let timer: NodeJS.Timeout | undefined;
  if (o.checkpointIntervalMs > 0) {
    let lastSize = -1;
    timer = setInterval(() => {
      if (log.size() === lastSize || log.integrityFailure()) return;
      lastSize = log.size();
      log
        .checkpoint()
        .catch((err: unknown) =>
          logger.error({ err: { message: (err as Error).message } }, 'checkpoint signing failed'),
        );
    }, o.checkpointIntervalMs);
    timer.unref();
  }

  return {
    log,
    implementation,
    accessLog,
    addTo: (server) => {
      server.addService(
        AuditServiceService,
        implementation as unknown as UntypedServiceImplementation,
      );
      server.addService(accessLog.definition, accessLog.implementation);
    },
    close: async () => {
      if (timer) clearInterval(timer);
      if (!log.integrityFailure() && log.size() > 0) await log.checkpoint().catch(() => undefined);
      await log.close();
    },
  };
}
