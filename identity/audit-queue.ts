import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import { context, ROOT_CONTEXT, type Context } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { AuditRecordOptions, AuditSink, IdentityAuditEvent } from './audit-sink.ts';

/** Options of {@link createBufferedAuditSink}; defaults are listed with each option. */
export interface BufferedAuditSinkOptions {
  /** Where records are delivered (e.g. {@link createAuditServiceSink}); it sets the deadline. */
  sink: AuditSink;
  logger?: Logger;
  /** Keeps the queue here while audit is unreachable, so a restart does not lose it. */
  queueFile?: string;
  /** Most records held; further ones are dropped, counted and logged. Default 10,000. */
  maxQueueRecords?: number;
  /** How often delivery is retried while audit is unreachable. Default 1000 ms. */
  retryIntervalMs?: number;
  /** Upper bound on waiting for an acknowledged record, whatever the sink does. Default 3000 ms. */
  acknowledgeTimeoutMs?: number;
  /** Prometheus registry for the queue depth and drop counter. Default: none. */
  registry?: Registry;
}

/** The sink plus what tests and operators look at. */
export interface BufferedAuditSink extends AuditSink {
  readonly queued: number;
  readonly dropped: number;
  /** Records the audit service refused as invalid (logged, then dropped). */
  readonly rejected: number;
  /** Whether the last delivery succeeded. */
  readonly reachable: boolean;
  /** Delivers what is queued now; resolves false when audit is unreachable. */
  flush(): Promise<boolean>;
  /** Stops retrying and keeps what is left in the queue file. */
  close(): void;
}

interface Pending {
  event: IdentityAuditEvent;
  /** The trace context of the request that made the record, so its append joins that trace. */
  ctx: Context;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no acknowledgement within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The broker's way to the audit log, in the policy service's spirit: it never makes a login
 * wait on audit, and it never issues a privileged token audit has not acknowledged.
 *
 * - Ordinary records (logins, `model:infer` issuances, exchanges, refusals, key rotations) are
 *   queued in order and delivered in the background; `record()` returns at once. While audit
 *   is unreachable the queue is kept in `queueFile` (rewritten atomically) and retried every
 *   `retryIntervalMs`, with one log line when audit goes away and one when it is back. A full
 *   queue drops new records, counts them (`bulwark_identity_audit_dropped_total`) and logs it.
 * - Acknowledged records (`{ acknowledged: true }`) are delivered before `record()` resolves,
 *   within `acknowledgeTimeoutMs`; otherwise it rejects and the caller refuses the action.
 *
 * Delivery is at least once: a record whose acknowledgement was lost is sent again.
 *
 * @example
 * ```ts
 * const audit = createBufferedAuditSink({
 *   sink: createAuditServiceSink(auditClient, { deadlineMs: 2000 }),
 *   queueFile: '.bulwark/identity-audit-queue.jsonl',
 *   logger,
 * });
 * await createBroker({ ...options, audit });
 * ```
 */
export function createBufferedAuditSink(options: BufferedAuditSinkOptions): BufferedAuditSink {
  const o = {
    maxQueueRecords: 10_000,
    retryIntervalMs: 1000,
    acknowledgeTimeoutMs: 3000,
    ...options,
  };
  const { sink, logger, queueFile } = o;
  const depth = o.registry
    ? new Gauge({
        name: 'bulwark_identity_audit_queue_depth',
        help: 'Identity audit records waiting for the audit service',
        registers: [o.registry],
      })
    : undefined;
  const droppedCounter = o.registry
    ? new Counter({
        name: 'bulwark_identity_audit_dropped_total',
        help: 'Identity audit records dropped because the queue was full',
        registers: [o.registry],
      })
    : undefined;
  let queue: Pending[] = [];
  if (queueFile) {
    try {
      queue = readFileSync(queueFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => ({ event: JSON.parse(line) as IdentityAuditEvent, ctx: ROOT_CONTEXT }));
      if (queue.length) {
        logger?.info(
          { event: 'identity.audit.queue_restored', records: queue.length },
          `audit queue restored from ${queueFile}: ${queue.length} records to deliver`,
        );
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        logger?.error({ event: 'identity.audit.queue_unreadable' }, 'audit queue unreadable');
      }
    }
  }
  let onDisk = queue.length > 0;
  let reachable = true;
  let dropped = 0;
  let rejected = 0;
  let closed = false;
  let flushing: Promise<boolean> | undefined;
  let retry: NodeJS.Timeout | undefined;

  function persist(): void {
    if (!queueFile) return;
    if (queue.length === 0) {
      if (onDisk) rmSync(queueFile, { force: true });
      onDisk = false;
      return;
    }
    try {
      const tmp = `${queueFile}.tmp`;
      writeFileSync(tmp, queue.map((p) => JSON.stringify(p.event)).join('\n') + '\n', {
        mode: 0o600,
      });
      renameSync(tmp, queueFile);
      onDisk = true;
    } catch {
      logger?.error({ event: 'identity.audit.queue_unwritable' }, 'audit queue file unwritable');
    }
  }

  function markReachable(now: boolean, reason?: string): void {
    if (now === reachable) return;
    reachable = now;
    if (now) {
      logger?.info({ event: 'identity.audit.reachable' }, 'audit service reachable again');
    } else {
      logger?.warn(
        { event: 'identity.audit.unreachable', queued: queue.length, reason },
        `audit service unreachable (${reason ?? 'no answer'}): ${queue.length} records queued, ` +
          `retrying every ${o.retryIntervalMs} ms; privileged tokens are refused until it is back`,
      );
    }
  }

  const reasonOf = (err: unknown) => {
    const e = err as { code?: unknown; details?: unknown; message?: unknown };
    return typeof e?.details === 'string'
      ? e.details.slice(0, 200)
      : typeof e?.message === 'string'
        ? e.message.slice(0, 200)
        : 'error';
  };

  async function drain(): Promise<boolean> {
    while (queue.length > 0) {
      const next = queue[0]!;
      try {
        await context.with(next.ctx, () => sink.record(next.event));
      } catch (err) {
        if ((err as { code?: unknown }).code === status.INVALID_ARGUMENT) {
          // Audit answered and refused this record: retrying cannot help, and it must not
          // hold back the records behind it.
          queue.shift();
          rejected += 1;
          depth?.set(queue.length);
          markReachable(true);
          logger?.error(
            { event: 'identity.audit.rejected', action: next.event.action, reason: reasonOf(err) },
            `audit service refused an identity ${next.event.action} record: ${reasonOf(err)}`,
          );
          continue;
        }
        markReachable(false, reasonOf(err));
        persist();
        scheduleRetry();
        return false;
      }
      queue.shift();
      depth?.set(queue.length);
      markReachable(true);
    }
    persist();
    return true;
  }

  function flush(): Promise<boolean> {
    flushing ??= drain().finally(() => {
      flushing = undefined;
    });
    return flushing;
  }

  function scheduleRetry(): void {
    if (closed || retry) return;
    retry = setTimeout(() => {
      retry = undefined;
      void flush();
    }, o.retryIntervalMs);
    retry.unref();
  }

  if (queue.length) void context.with(ROOT_CONTEXT, flush);

  return {
    get queued() {
      return queue.length;
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
    async record(event: IdentityAuditEvent, recordOptions: AuditRecordOptions = {}) {
      if (recordOptions.acknowledged) {
        try {
          await withTimeout(sink.record(event), o.acknowledgeTimeoutMs);
          markReachable(true);
          if (queue.length) void flush();
        } catch (err) {
          markReachable(false, reasonOf(err));
          scheduleRetry();
          throw err;
        }
        return;
      }
      if (queue.length >= o.maxQueueRecords) {
        dropped += 1;
        droppedCounter?.inc();
        logger?.warn(
          { event: 'identity.audit.dropped', dropped, action: event.action },
          `audit queue full (${o.maxQueueRecords}): ${event.action} record dropped (${dropped} so far)`,
        );
        return;
      }
      queue.push({ event, ctx: context.active() });
      depth?.set(queue.length);
      if (!reachable) {
        // Waiting for the retry timer: keep the disk copy current instead of sending now.
        persist();
        scheduleRetry();
        return;
      }
      void flush();
    },
    flush,
    close() {
      closed = true;
      if (retry) clearTimeout(retry);
      retry = undefined;
      persist();
    },
  };
}
