import { trace } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { AuditSink, IdentityAuditEvent } from './audit-sink.ts';

export type AuditInput = Omit<IdentityAuditEvent, 'time' | 'service' | 'eventType'>;

/** Fills in the common fields, sends to the sink and never lets a sink failure break a login. */
export interface Auditor {
  record(event: AuditInput): Promise<void>;
  /**
   * Records an event the broker acts on only once the audit log holds it (privileged token
   * issuance). Resolves `false`, with a log line, when the sink cannot acknowledge it; `true`
   * without a sink (records are then only logged, as documented for `BrokerOptions.audit`).
   */
  recordAcknowledged(event: AuditInput): Promise<boolean>;
  /** Logs a failure by name and code only: causes may hold tokens, so they are not logged. */
  log(err: unknown, message: string): void;
}

export function createAuditor(options: {
  sink?: AuditSink;
  logger?: Logger;
  now: () => number;
  metrics?: Registry;
}): Auditor {
  const { sink, logger } = options;
  // Every audited event is also counted: logins, issuances, exchanges, refusals, rotations.
  const events = options.metrics
    ? new Counter({
        name: 'bulwark_identity_events_total',
        help: 'Identity broker events by action (login, token.issue, token.exchange, ...) and outcome',
        labelNames: ['action', 'outcome'] as const,
        registers: [options.metrics],
      })
    : undefined;
  const complete = (input: AuditInput): IdentityAuditEvent => {
    // The request's trace (HTTP server span) links the record to the rest of the call.
    const span = trace.getActiveSpan()?.spanContext();
    const traced = span && span.traceId !== '00000000000000000000000000000000';
    const event: IdentityAuditEvent = {
      time: new Date(options.now()).toISOString(),
      service: 'identity',
      eventType: 'authn',
      ...(traced ? { traceId: span.traceId, spanId: span.spanId } : {}),
      ...input,
    };
    logger?.info({ audit: event }, `identity ${event.action} ${event.outcome}`);
    events?.inc({ action: event.action, outcome: event.outcome });
    return event;
  };
  return {
    async record(input) {
      const event = complete(input);
      try {
        await sink?.record(event);
      } catch (err) {
        logger?.error({ err: { name: (err as Error)?.name } }, 'audit sink failed');
      }
    },
    async recordAcknowledged(input) {
      const event = complete(input);
      try {
        await sink?.record(event, { acknowledged: true });
        return true;
      } catch (err) {
        const e = err as { name?: string; code?: string | number } | undefined;
        logger?.error(
          { event: 'identity.audit.unacknowledged', err: { name: e?.name, code: e?.code } },
          `audit log did not acknowledge ${event.action}; refusing it (fail closed)`,
        );
        return false;
      }
    },
    log(err, message) {
      const e = err as { name?: string; code?: string } | undefined;
      logger?.warn({ err: { name: e?.name, code: e?.code } }, message);
    },
  };
}
