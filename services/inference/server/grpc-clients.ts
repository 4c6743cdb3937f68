/**
 * Adapters from the generated grpc-js clients of `bulwark.policy.v1` and `bulwark.audit.v1`
 * to the small promise interfaces the guards take, with a deadline on every call.
 */
import { Metadata } from '@grpc/grpc-js';
import type { AuditServiceClient } from '../../../gen/bulwark/audit/v1/audit.ts';
import type { PolicyServiceClient } from '../../../gen/bulwark/policy/v1/policy.ts';
import type { AuditClient } from '../guards/audit-guard.ts';
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
  };
}

export function promiseAuditClient(client: AuditServiceClient, deadlineMs = 5000): AuditClient {
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
  };
}
