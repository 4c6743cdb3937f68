import { Metadata } from '@grpc/grpc-js';
import {
  AuditRecord,
  EventType,
  Outcome,
  type AuditServiceClient,
} from '../gen/bulwark/audit/v1/audit.ts';
import type { AuditSink, IdentityAuditEvent } from './audit-sink.ts';

/**
 * The audit log needs a subject on every record. Where the broker has no person, the actor is
 * the client as the mesh names service clients (`<org>/<client_id>`, else `client/<id>`), the
 * broker itself for key rotation, or `anonymous` for a request that never named a client.
 */
function actorSub(event: IdentityAuditEvent): string {
  const { sub, org, clientId } = event.actor;
  if (sub) return sub;
  if (clientId) return org ? `${org}/${clientId}` : `client/${clientId}`;
  return event.action.startsWith('key.') ? 'bulwark/identity' : 'anonymous';
}

/** Maps one broker event to the audit log's record (no token, code or secret is ever in it). */
export function toAuditRecord(event: IdentityAuditEvent): AuditRecord {
  const attributes: Record<string, string> = {};
  for (const [key, value] of Object.entries(event.target ?? {})) {
    if (value !== undefined) attributes[key] = String(value).slice(0, 1024);
  }
  return AuditRecord.fromPartial({
    time: new Date(event.time),
    service: event.service,
    eventType: EventType.EVENT_TYPE_AUTHN,
    actor: {
      sub: actorSub(event),
      org: event.actor.org ?? '',
      clientId: event.actor.clientId ?? '',
      sourceAddress: event.actor.sourceAddress ?? '',
    },
    action: event.action,
    outcome: event.outcome === 'success' ? Outcome.OUTCOME_SUCCESS : Outcome.OUTCOME_DENIED,
    reason: event.reason ?? '',
    attributes,
    traceId: event.traceId ?? '',
    spanId: event.spanId ?? '',
  });
}

/**
 * An {@link AuditSink} that appends to the audit service (`bulwark.audit.v1.AuditService`)
 * through a client the caller built (mesh mTLS, deadlines and interceptors are its concern).
 *
 * @example
 * ```ts
 * const sink = createAuditServiceSink(auditClient, { deadlineMs: 2000 });
 * await createBroker({ ...options, audit: sink });
 * ```
 */
export function createAuditServiceSink(
  client: Pick<AuditServiceClient, 'append'>,
  options: { deadlineMs?: number } = {},
): AuditSink {
  const deadlineMs = options.deadlineMs ?? 2000;
  return {
    record: (event) =>
      new Promise<void>((resolve, reject) => {
        client.append(
          { record: toAuditRecord(event) },
          new Metadata(),
          { deadline: Date.now() + deadlineMs },
          (err) => (err ? reject(err) : resolve()),
        );
      }),
  };
}
