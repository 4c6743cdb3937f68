/**
 * Adapters from the generated grpc-js clients of `bulwark.policy.v1` and `bulwark.audit.v1`
 * to the small promise interfaces the guards take, with a deadline on every call.
 */
import { Metadata } from '@grpc/grpc-js';
import type { AuditServiceClient } from '../../../gen/bulwark/audit/v1/audit.ts';
import type { PolicyServiceClient } from '../../../gen/bulwark/policy/v1/policy.ts';
import type { AuditClient } from '../guards/audit-guard.ts';
import {
  createAuditPipeline,
  type AuditPipelineOptions,
  type BatchingAuditTransport,
} from './audit-pipeline.ts';
import type { PolicyClient } from '../guards/policy-guard.ts';

/**
 * @example
 * ```ts
 * const policy = promisePolicyClient(createMeshClient(PolicyServiceClient, { ... }));
 * ```
 */
export function promisePolicyClient(client: PolicyServiceClient, deadlineMs = 1000): PolicyClient {
  return {
    decide: (request) =>
      new Promise((resolve, reject) => {
        client.decide(
          request,
          { deadline: Date.now() + deadlineMs } as Partial<Metadata> as never,
          (err, res) => (err ? reject(err) : resolve(res)),
        );
      }),
    getRevision: () =>
      new Promise((resolve, reject) => {
        client.getRevision(
          {},
          { deadline: Date.now() + deadlineMs } as Partial<Metadata> as never,
          (err, res) => (err ? reject(err) : resolve(res.revision)),
        );
      }),
  };
}

/**
 * The audit client of the inference service: `Append` and `AppendBatch` with a deadline on
 * every call, behind {@link createAuditPipeline} so concurrent answers share round trips.
 *
 * @example
 * ```ts
 * const audit = promiseAuditClient(createMeshClient(AuditServiceClient, { ... }));
 * ```
 */
export function promiseAuditClient(
  client: AuditServiceClient,
  deadlineMs = 5000,
  pipeline: AuditPipelineOptions = {},
): AuditClient {
  return createAuditPipeline(auditTransport(client, deadlineMs), pipeline);
}

/** `Append` and `AppendBatch` as promises, each with a deadline. */
export function auditTransport(
  client: AuditServiceClient,
  deadlineMs = 5000,
): BatchingAuditTransport {
  return {
    append: (record) =>
      new Promise((resolve, reject) => {
        client.append(
          { record },
          new Metadata(),
          { deadline: Date.now() + deadlineMs },
          (err, res) => {
            if (err) reject(err);
            else if (!res.receipt) reject(new Error('audit service returned no receipt'));
            else resolve(res.receipt);
          },
        );
      }),
    appendBatch: (records) =>
      new Promise((resolve, reject) => {
        const stream = client.appendBatch(
          new Metadata(),
          { deadline: Date.now() + deadlineMs },
          (err, res) => (err ? reject(err) : resolve(res.receipts)),
        );
        // A stream that breaks mid-way ends in the callback with its status.
        stream.on('error', () => {});
        for (const record of records) stream.write({ record });
        stream.end();
      }),
  };
}
