/**
 * Lost acknowledgements. When the audit service may have made an answer's record durable but
 * its acknowledgement never arrived (deadline, connection lost), the caller is told UNAVAILABLE
 * while the log may say success. To keep the log truthful, such records go into a small,
 * bounded, durable queue (a JSON-lines file under the service's state directory) before the
 * refusal leaves; once audit is reachable again each one is followed in the log by an
 * `inference` record with outcome error, reason {@link WITHHELD_REASON}, the same request id
 * and trace id, and `attributes.withholds` = the original record id. The queue survives a
 * restart of inference itself.
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  EventType,
  Outcome,
  type Actor,
  type AuditRecord,
  type Target,
} from '../../../gen/bulwark/audit/v1/audit.ts';

/** The reason of every withhold record. */
export const WITHHELD_REASON = 'answer withheld: audit acknowledgement lost';

/** What a withhold record needs from the original record (no tensors, no secrets). */
export interface WithheldEntry {
  recordId: string;
  requestId: string;
  traceId: string;
  spanId: string;
  actor?: Actor | undefined;
  target?: Target | undefined;
  inputDigest: string;
  policyRevision: string;
}

export interface WithheldQueueOptions {
  /** Appends a record and resolves once acknowledged (the auditor's own path). */
  append(record: Omit<AuditRecord, 'id' | 'time' | 'service' | 'submittedBy'>): Promise<unknown>;
  /** The queue file; omit to keep the queue in memory only (tests, no state dir). */
  file?: string;
  /** At most this many entries are kept. Default 10000. */
  maxEntries?: number;
  /** First retry delay while audit is unreachable; doubles up to `maxRetryMs`. Default 250 ms. */
  retryMs?: number;
  maxRetryMs?: number;
  logger?: Logger;
}

export interface WithheldQueue {
  /** Records an ambiguous answer record durably (resolves once on disk). */
  add(record: AuditRecord): Promise<void>;
  /** Loads a queue left by an earlier process and starts delivering it. */
  start(): Promise<void>;
  /** Asks for a delivery attempt now (e.g. after audit acknowledged something). */
  kick(): void;
  /** Delivers what it can now; resolves with the number of entries still queued. */
  drain(): Promise<number>;
  size(): number;
  close(): Promise<void>;
}

/** Status codes the audit service sends on purpose: the record was refused, not maybe stored. */
const CLEAR_REFUSALS = new Set<number>([
  status.INVALID_ARGUMENT,
  status.PERMISSION_DENIED,
  status.UNAUTHENTICATED,
  status.RESOURCE_EXHAUSTED,
  status.FAILED_PRECONDITION,
  status.ALREADY_EXISTS,
  status.NOT_FOUND,
  status.OUT_OF_RANGE,
  status.UNIMPLEMENTED,
]);

/**
 * Whether an Append failure leaves the record's fate unknown. Clear: a deliberate refusal by
 * the audit service (its error code trailer, or a refusal status), or a call grpc-js never
 * sent (no connection established). Everything else (timeouts, dropped connections, resets)
 * is ambiguous: the record may be in the log.
 */
export function isAmbiguousAppendFailure(err: unknown): boolean {
  const e = err as Partial<ServiceError> | undefined;
  if (!e || typeof e.code !== 'number') return true;
  if (CLEAR_REFUSALS.has(e.code)) return false;
  if (e.metadata?.get('bulwark-error-code').length) return false;
  if (e.code === status.UNAVAILABLE && /No connection established/.test(e.details ?? ''))
    return false;
  return true;
}

function entryOf(record: AuditRecord): WithheldEntry {
  return {
    recordId: record.id,
    requestId: record.attributes['request_id'] ?? '',
    traceId: record.traceId,
    spanId: record.spanId,
    actor: record.actor,
    target: record.target,
    inputDigest: record.inputDigest,
    policyRevision: record.policyRevision,
  };
}

function parseLines(text: string): WithheldEntry[] {
  const out: WithheldEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as WithheldEntry;
      if (typeof e.recordId === 'string' && e.recordId) out.push(e);
    } catch {
      // A line torn by a crash mid-write was never acknowledged as queued: skip it.
    }
  }
  return out;
}

/**
 * @example
 * ```ts
 * const queue = createWithheldQueue({ file: 'var/inference/withheld-answers.jsonl', append });
 * await queue.start();
 * // on an ambiguous Append of an answer's record:
 * await queue.add(record);
 * ```
 */
export function createWithheldQueue(options: WithheldQueueOptions): WithheldQueue {
  const maxEntries = options.maxEntries ?? 10_000;
  const baseRetry = options.retryMs ?? 250;
  const maxRetry = options.maxRetryMs ?? 5000;
  const file = options.file;
  let entries: WithheldEntry[] = [];
  let io: Promise<unknown> = Promise.resolve();
  let draining: Promise<number> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let delay = baseRetry;
  let closed = false;

  /** File operations run one at a time, so a rewrite never loses a concurrent append. */
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = io.then(fn, fn);
    io = next.catch(() => undefined);
    return next;
  };
  const fsyncWrite = async (target: string, data: string, flags: string) => {
    const fh = await open(target, flags, 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
  };
  /** Makes a new or renamed directory entry durable too. */
  const syncDir = async (dir: string) => {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  };
  const rewrite = () =>
    serial(async () => {
      if (!file) return;
      const tmp = `${file}.tmp`;
      await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      await fsyncWrite(tmp, entries.map((e) => `${JSON.stringify(e)}\n`).join(''), 'w');
      await rename(tmp, file);
      await syncDir(path.dirname(file));
    });
  let fileReady = false;

  const schedule = (ms: number) => {
    if (closed || timer || entries.length === 0) return;
    timer = setTimeout(() => {
      timer = undefined;
      void queue.drain();
    }, ms);
    timer.unref();
  };

  const deliver = async (): Promise<number> => {
    const delivered = new Set<string>();
    for (const e of [...entries]) {
      if (closed) break;
      try {
        await options.append({
          eventType: EventType.EVENT_TYPE_INFERENCE,
          action: 'infer',
          outcome: Outcome.OUTCOME_ERROR,
          reason: WITHHELD_REASON,
          actor: e.actor,
          target: e.target,
          policyRevision: e.policyRevision,
          inputDigest: e.inputDigest,
          outputDigest: '',
          latencyUs: 0,
          traceId: e.traceId,
          spanId: e.spanId,
          attributes: { request_id: e.requestId, withholds: e.recordId },
        });
        delivered.add(e.recordId);
      } catch (err) {
        options.logger?.warn(
          { err: (err as Error).message, queued: entries.length - delivered.size },
          'withheld answers not delivered yet: audit unreachable',
        );
        break;
      }
    }
    if (delivered.size > 0) {
      entries = entries.filter((e) => !delivered.has(e.recordId));
      await rewrite();
      options.logger?.info(
        { delivered: delivered.size, queued: entries.length },
        'withheld answers recorded in the audit log',
      );
    }
    if (entries.length === 0) delay = baseRetry;
    else {
      schedule(delay);
      delay = Math.min(maxRetry, delay * 2);
    }
    return entries.length;
  };

  const queue: WithheldQueue = {
    async add(record) {
      if (entries.some((e) => e.recordId === record.id)) return;
      if (entries.length >= maxEntries) {
        // Full: the log may keep a success record without its withhold note. Say so loudly.
        options.logger?.error(
          { recordId: record.id, maxEntries },
          'withheld-answer queue full: an unacknowledged answer record cannot be annotated',
        );
        return;
      }
      const entry = entryOf(record);
      entries.push(entry);
      if (file) {
        await serial(async () => {
          if (!fileReady) {
            await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
          }
          await fsyncWrite(file, `${JSON.stringify(entry)}\n`, 'a');
          if (!fileReady) {
            await syncDir(path.dirname(file));
            fileReady = true;
          }
        });
      }
      schedule(delay);
    },
    async start() {
      if (!file) return;
      let text = '';
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      const known = new Set(entries.map((e) => e.recordId));
      for (const e of parseLines(text)) {
        if (!known.has(e.recordId)) {
          entries.push(e);
          known.add(e.recordId);
        }
      }
      if (text) {
        // Rewrite cleanly, so a line torn by a crash cannot swallow the next appended one.
        await rewrite();
        fileReady = true;
      }
      if (entries.length) {
        options.logger?.warn({ queued: entries.length }, 'withheld answers left by an earlier run');
      }
      schedule(0);
    },
    kick() {
      if (entries.length && !draining) {
        clearTimeout(timer);
        timer = undefined;
        schedule(0);
      }
    },
    drain() {
      draining ??= deliver().finally(() => {
        draining = undefined;
      });
      return draining;
    },
    size: () => entries.length,
    async close() {
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      await draining?.catch(() => undefined);
      await io;
    },
  };
  return queue;
}
