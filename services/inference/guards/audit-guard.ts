/**
 * Step 9: audit before answer. Every inference (and every refusal and model change) is
 * appended to the audit log through an injected {@link AuditClient}; an answer leaves the
 * service only after the audit service acknowledged its record, and carries the receipt
 * (log id and leaf index) so the caller can later fetch an inclusion proof. An audit service
 * that is down or slow makes the call UNAVAILABLE: never an unaudited answer.
 */
import { randomUUID } from 'node:crypto';
import {
  EventType,
  Outcome,
  type AuditRecord,
  type Receipt,
} from '../../../gen/bulwark/audit/v1/audit.ts';
import { InferenceError } from '../errors.ts';
import { isAmbiguousAppendFailure, type WithheldQueue } from './withheld-answers.ts';

/** The part of the generated `AuditServiceClient` the service needs (promisified). */
export interface AuditClient {
  append(record: AuditRecord): Promise<Receipt>;
}

/** What the caller gets back: enough to ask for an inclusion proof. */
export interface AuditReceipt {
  /** The log's checkpoint origin, which names the log. */
  logId: string;
  leafIndex: number;
}

export interface AuditorOptions {
  client: AuditClient;
  /** `service` field of the records. Default `inference`. */
  service?: string;
  /** How long to wait for the acknowledgement. Default 5000 ms. */
  timeoutMs?: number;
  now?: () => Date;
  /**
   * Where answer records whose Append outcome is ambiguous go (see `withheld-answers.ts`);
   * a function so the queue can itself append through this auditor.
   */
  withheld?: () => Pick<WithheldQueue, 'add' | 'kick'> | undefined;
}

export interface RecordOptions {
  /**
   * This record stands for an answer about to leave: if its Append ends ambiguously, queue it
   * so the log later says the answer was withheld.
   */
  answer?: boolean;
}

export type AuditEvent = Partial<Omit<AuditRecord, 'id' | 'time' | 'service'>> &
  Pick<AuditRecord, 'eventType' | 'action' | 'outcome'>;

export interface Auditor {
  /** Appends the record and resolves once acknowledged, or throws UNAVAILABLE. */
  record(event: AuditEvent, opts?: RecordOptions): Promise<AuditReceipt>;
}

export { EventType, Outcome };

/**
 * @example
 * ```ts
 * const auditor = createAuditor({ client: promisifiedAuditClient });
 * const receipt = await auditor.record({ eventType: EventType.EVENT_TYPE_INFERENCE, action: 'infer', outcome: Outcome.OUTCOME_SUCCESS });
 * ```
 */
export function createAuditor(options: AuditorOptions): Auditor {
  const service = options.service ?? 'inference';
  const timeoutMs = options.timeoutMs ?? 5000;
  const now = options.now ?? (() => new Date());
  return {
    async record(event, opts) {
      const record: AuditRecord = {
        id: randomUUID(),
        time: now(),
        service,
        actor: undefined,
        target: undefined,
        reason: '',
        policyRevision: '',
        inputDigest: '',
        outputDigest: '',
        latencyUs: 0,
        traceId: '',
        spanId: '',
        attributes: {},
        submittedBy: '',
        ...event,
      };
      let timer: NodeJS.Timeout | undefined;
      try {
        const receipt = await Promise.race([
          options.client.append(record),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error('audit acknowledgement timed out')),
              timeoutMs,
            );
          }),
        ]);
        options.withheld?.()?.kick();
        return { logId: receipt.logOrigin, leafIndex: receipt.leafIndex };
      } catch (err) {
        const queue = options.withheld?.();
        let cause = err;
        if (opts?.answer && queue && isAmbiguousAppendFailure(err)) {
          // Durable before the refusal leaves: the log may already say success.
          await queue.add(record).catch((queueErr: unknown) => {
            cause = new AggregateError([err, queueErr], 'withheld-answer queue write failed');
          });
        }
        throw new InferenceError(
          'ERR_INFERENCE_AUDIT_UNAVAILABLE',
          'audit service unavailable: the request was not answered',
          { cause },
        );
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
