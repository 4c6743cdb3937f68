import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { Counter, Gauge, Registry } from 'prom-client';
import type {
  AppendBatchRequest,
  AuditRecord,
  AuditServiceClient,
} from '../../gen/bulwark/audit/v1/audit.ts';
import { deserialize, serialize, toAuditRecord } from './audit-record.ts';
import type { DecisionAuditor } from './decision-record.ts';

/** Options of {@link createAuditAuditor}; defaults are listed with each option. */
export interface AuditAuditorOptions {
  /**
   * A mesh client of `bulwark.audit.v1.AuditService`. Give its channel a short reconnect backoff
   * (`grpc.max_reconnect_backoff_ms` ~1000) so the queue drains soon after audit is back.
   */
  client: Pick<AuditServiceClient, 'append' | 'appendBatch'>;
  /** Directory of the on-disk queue (`queue.jsonl`), created when missing. */
  queueDir: string;
  logger: Logger;
  /** Most records the queue holds; further records are dropped and counted. Default 50,000. */
  maxQueueRecords?: number;
  /** Records per AppendBatch call. Default 256. */
  batchSize?: number;
  /** How often the queue is flushed while audit is reachable. Default 200 ms. */
  flushIntervalMs?: number;
  /** How often delivery is retried while audit is unreachable. Default 1000 ms. */
  retryIntervalMs?: number;
  /** Deadline of each call to audit. Default 2000 ms. */
  deadlineMs?: number;
  /** Metrics registry. Default: a private one. */
  registry?: Registry;
  /** `service` field of records. Default `policy`. */
  service?: string;
}

/** The auditor plus what tests and operators look at. */
export interface AuditAuditor extends DecisionAuditor {
  /** Records waiting for delivery. */
  readonly queued: number;
  /** Records dropped because the queue was full. */
  readonly dropped: number;
  /** Records the audit service refused as invalid (dropped after logging). */
  readonly rejected: number;
  /** Whether the last call to audit succeeded. */
  readonly reachable: boolean;
  /** Delivers what is queued now; resolves false if audit is unreachable. */
  flush(): Promise<boolean>;
}

const QUEUE_FILE = 'queue.jsonl';

/**
 * Records decisions in the audit service. Ordinary decisions are batched (AppendBatch) from a
 * bounded queue; while audit is unreachable the queue is kept on disk (`queue.jsonl`, rewritten
 * atomically) and drains when audit is back, also after a restart. A full queue drops new
 * records, counts them (`bulwark_policy_audit_dropped_total`) and logs it. Sensitive decisions
 * are appended one by one and only count once acknowledged: if audit cannot acknowledge, the
 * decision is refused by the caller (fail closed) and a record of that refusal is queued.
 *
 * Records are kept in memory while audit is reachable, so a crash loses at most one flush
 * interval of ordinary records; sensitive ones are never returned before they are durable.
 *
 * @example
 * ```ts
 * const auditor = createAuditAuditor({ client: auditClient, queueDir: 'var/policy-audit', logger });
 * const policy = await createPolicyService({ ..., auditor });
 * ```
 */
export function createAuditAuditor(options: AuditAuditorOptions): AuditAuditor {
  const o = {
    maxQueueRecords: 50_000,
    batchSize: 256,
    flushIntervalMs: 200,
    retryIntervalMs: 1000,
    deadlineMs: 2000,
    service: 'policy',
    ...options,
  };
  const { client, logger } = o;
  const registry = o.registry ?? new Registry();
  const droppedCounter = new Counter({
    name: 'bulwark_policy_audit_dropped_total',
    help: 'Decision records dropped because the audit queue was full',
    registers: [registry],
  });
  const rejectedCounter = new Counter({
    name: 'bulwark_policy_audit_rejected_total',
    help: 'Decision records the audit service refused as invalid',
    registers: [registry],
  });
  const depth = new Gauge({
    name: 'bulwark_policy_audit_queue_depth',
    help: 'Decision records waiting for the audit service',
    registers: [registry],
  });
  mkdirSync(o.queueDir, { recursive: true });
  const file = join(o.queueDir, QUEUE_FILE);
  let pending: AuditRecord[] = [];
  try {
    pending = readFileSync(file, 'utf8').split('\n').filter(Boolean).map(deserialize);
    if (pending.length)
      logger.info(
        { event: 'policy.audit.queue_restored', records: pending.length },
        'audit queue restored from disk',
      );
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      logger.error(
        { event: 'policy.audit.queue_unreadable', err },
        'audit queue file unreadable; starting empty',
      );
    }
  }
  let onDisk = pending.length > 0;
  let reachable = true;
  let dropped = 0;
  let rejected = 0;
  let flushing: Promise<boolean> | undefined;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;

  const deadline = () => new Date(Date.now() + o.deadlineMs);

  function persist(): void {
    // The disk copy exists only while audit is unreachable (or at close with records left).
    if (pending.length === 0) {
      if (onDisk) rmSync(file, { force: true });
      onDisk = false;
      return;
    }
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, pending.map(serialize).join('\n') + '\n', { mode: 0o600 });
    renameSync(tmp, file);
    onDisk = true;
  }

  function enqueue(record: AuditRecord): void {
    if (pending.length >= o.maxQueueRecords) {
      dropped += 1;
      droppedCounter.inc();
      logger.warn(
        {
          event: 'policy.audit.dropped',
          dropped,
          queued: pending.length,
          object: record.attributes.object,
        },
        `audit queue full (${o.maxQueueRecords}): decision record dropped (${dropped} dropped so far)`,
      );
      return;
    }
    pending.push(record);
    depth.set(pending.length);
  }

  function sendBatch(batch: AuditRecord[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const stream = client.appendBatch({ deadline: deadline() }, (err) =>
        err ? reject(err) : resolve(),
      );
      for (const record of batch) stream.write({ record } satisfies AppendBatchRequest);
      stream.end();
    });
  }

  async function sendOneByOne(batch: AuditRecord[]): Promise<boolean> {
    for (const [i, record] of batch.entries()) {
      try {
        await appendOne(record);
      } catch (err) {
        const e = err as { code?: number; details?: string };
        if (e.code !== status.INVALID_ARGUMENT) {
          pending = pending.slice(i);
          depth.set(pending.length);
          markReachable(false, err);
          persist();
          return false;
        }
        rejected += 1;
        rejectedCounter.inc();
        logger.error(
          { event: 'policy.audit.rejected', details: e.details, object: record.attributes.object },
          `audit service refused a decision record: ${e.details ?? 'invalid record'}`,
        );
      }
    }
    return true;
  }

  function appendOne(record: AuditRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      client.append({ record }, new Metadata(), { deadline: deadline() }, (err) =>
        err ? reject(err) : resolve(),
      );
    });
  }

  function markReachable(ok: boolean, err?: unknown): void {
    if (ok && !reachable)
      logger.info(
        { event: 'policy.audit.reachable', queued: pending.length },
        'audit service reachable again; draining queue',
      );
    if (!ok && reachable) {
      const e = err as { code?: number; details?: string };
      logger.warn(
        {
          event: 'policy.audit.unreachable',
          code: e?.code,
          details: e?.details,
          queued: pending.length,
        },
        'audit service unreachable: queueing decision records on disk; administrative decisions refused',
      );
    }
    reachable = ok;
  }

  async function flushOnce(): Promise<boolean> {
    while (pending.length) {
      const batch = pending.slice(0, o.batchSize);
      try {
        await sendBatch(batch);
      } catch (err) {
        if ((err as { code?: number }).code !== status.INVALID_ARGUMENT) {
          markReachable(false, err);
          persist();
          return false;
        }
        // Audit refused a record of the batch: send them one by one so one bad record cannot
        // block the queue; refused ones are dropped, counted and logged.
        if (!(await sendOneByOne(batch))) return false;
      }
      markReachable(true);
      pending = pending.slice(batch.length);
      depth.set(pending.length);
      if (onDisk) persist();
    }
    return true;
  }

  function flush(): Promise<boolean> {
    flushing ??= flushOnce().finally(() => {
      flushing = undefined;
    });
    return flushing;
  }

  function schedule(): void {
    if (closed) return;
    timer = setTimeout(
      () => {
        void flush().finally(schedule);
      },
      reachable ? o.flushIntervalMs : o.retryIntervalMs,
    );
    timer.unref();
  }
  schedule();

  return {
    get queued() {
      return pending.length;
    },
    get dropped() {
      return dropped;
    },
    get rejected() {
      return rejected;
    },
    get reachable() {
      return reachable;
    },
    flush,
    async record(record, sensitive) {
      if (!sensitive) {
        enqueue(toAuditRecord(record, o.service));
        return;
      }
      try {
        await appendOne(toAuditRecord(record, o.service));
        markReachable(true);
      } catch (err) {
        markReachable(false, err);
        // The caller refuses the decision; keep a record of that refusal.
        enqueue(
          toAuditRecord(
            { ...record, allowed: false, reason: 'refused: audit unavailable' },
            o.service,
            'fail-closed',
          ),
        );
        throw err;
      }
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      await flush();
      persist();
    },
  };
}
