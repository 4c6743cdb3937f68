/**
 * An {@link AuditClient} that shares audit round trips between concurrent inference calls.
 *
 * Every answer waits for its own audit acknowledgement (audit before answer), so under load
 * the inference service would make one `Append` call per request, each paying a full mesh
 * round trip. This client sends a record at once when the line is free (the lowest latency
 * for a lone caller) and, while `maxInFlight` appends are already under way, gathers the
 * records that arrive meanwhile into one `AppendBatch` stream. Each record still resolves
 * only with its own receipt, after the audit service made it durable; a failed batch fails
 * every record in it with the same error, so nothing is answered unaudited.
 */
import type { Receipt } from '../../../gen/bulwark/audit/v1/audit.ts';
import type { AuditRecord } from '../../../gen/bulwark/audit/v1/audit.ts';
import type { AuditClient } from '../guards/audit-guard.ts';

/** The two calls the pipeline needs (see `promiseAuditClient`). */
export interface BatchingAuditTransport {
  /** `Append` of one record. */
  append(record: AuditRecord): Promise<Receipt>;
  /** `AppendBatch` of several records: one receipt per record, in order. */
  appendBatch(records: readonly AuditRecord[]): Promise<Receipt[]>;
}

export interface AuditPipelineOptions {
  /** Appends under way at once before records start to gather. Default 1. */
  maxInFlight?: number;
  /** Most records in one `AppendBatch`. Default 256. */
  maxBatch?: number;
}

/** gRPC status `INVALID_ARGUMENT`. */
const INVALID_ARGUMENT = 3;

interface Pending {
  record: AuditRecord;
  resolve: (receipt: Receipt) => void;
  reject: (err: unknown) => void;
}

/**
 * @example
 * ```ts
 * const audit = createAuditPipeline(auditTransport(auditClient));
 * const receipt = await audit.append(record); // durable and sequenced
 * ```
 */
export function createAuditPipeline(
  transport: BatchingAuditTransport,
  options: AuditPipelineOptions = {},
): AuditClient {
  const maxInFlight = Math.max(1, options.maxInFlight ?? 1);
  const maxBatch = Math.max(1, options.maxBatch ?? 256);
  let queue: Pending[] = [];
  let inFlight = 0;

  const settle = (batch: Pending[], receipts: Receipt[]) => {
    if (receipts.length !== batch.length) {
      const err = new Error(
        `audit service returned ${receipts.length} receipts for ${batch.length} records`,
      );
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => {
      const receipt = receipts[i]!;
      // A receipt for another record would be an audit trail that points elsewhere.
      if (receipt.id !== p.record.id) p.reject(new Error('audit receipt names another record'));
      else p.resolve(receipt);
    });
  };

  const pump = () => {
    while (inFlight < maxInFlight && queue.length > 0) {
      const batch = queue.length <= maxBatch ? queue : queue.slice(0, maxBatch);
      queue = queue.length <= maxBatch ? [] : queue.slice(maxBatch);
      inFlight += 1;
      const sent =
        batch.length === 1
          ? transport.append(batch[0]!.record).then((r) => [r])
          : transport.appendBatch(batch.map((p) => p.record)).catch((err: unknown) => {
              // A batch is refused whole when one record is invalid; that record must not
              // take its neighbours' answers down with it, so each is tried on its own.
              if ((err as { code?: unknown }).code !== INVALID_ARGUMENT) throw err;
              return Promise.allSettled(batch.map((p) => transport.append(p.record))).then(
                (results) => {
                  results.forEach((r, i) => {
                    const p = batch[i]!;
                    if (r.status === 'fulfilled') settle([p], [r.value]);
                    else p.reject(r.reason);
                  });
                  return undefined;
                },
              );
            });
      sent
        .then(
          (receipts) => {
            if (receipts) settle(batch, receipts);
          },
          (err: unknown) => {
            for (const p of batch) p.reject(err);
          },
        )
        .finally(() => {
          inFlight -= 1;
          pump();
        });
    }
  };

  return {
    append: (record) =>
      new Promise<Receipt>((resolve, reject) => {
        queue.push({ record, resolve, reject });
        pump();
      }),
  };
}
