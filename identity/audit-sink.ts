/** What happened, in the broker's words. */
export type IdentityAuditAction =
  | 'login'
  | 'token.issue'
  | 'token.exchange'
  | 'token.refresh'
  | 'token.revoke'
  | 'token.refuse'
  | 'device.authorize'
  /** Scheduled rotation: the next signing key is published; it signs from `target.activatesAt`. */
  | 'key.publish'
  /** A new key signs from now on (on demand, or a scheduled key whose time came). */
  | 'key.rotate'
  | 'client.revoke';

/**
 * One audit record from the broker. It never carries a token, code, secret or key: only who,
 * what, for which audience and why it was refused.
 */
export interface IdentityAuditEvent {
  /** RFC 3339 UTC time. */
  time: string;
  service: 'identity';
  /** The audit log's event type: the broker only emits `authn`. */
  eventType: 'authn';
  action: IdentityAuditAction;
  outcome: 'success' | 'failure';
  /** Why: an OAuth error code or a short fixed phrase (never user-supplied text verbatim). */
  reason?: string;
  actor: { sub?: string; org?: string; clientId?: string; sourceAddress?: string };
  target?: {
    resource?: string;
    scope?: string;
    kid?: string;
    tokenId?: string;
    grantType?: string;
    /** Key rotation: when the key was published in the JWKS (RFC 3339). */
    publishedAt?: string;
    /** Key rotation: when the key starts (started) signing (RFC 3339). */
    activatesAt?: string;
    /** Key rotation: the key it replaces, which stays published until its tokens expire. */
    previousKid?: string;
  };
  /** W3C trace and span id of the request that caused the event, when it was traced. */
  traceId?: string;
  spanId?: string;
}

/** How a record must be delivered. */
export interface AuditRecordOptions {
  /**
   * The caller acts only once the audit log holds the record (a privileged token is issued
   * only then): the sink must not just queue it, and rejects when it cannot deliver it.
   */
  acknowledged?: boolean;
}

/**
 * Where audit records go. The audit service's client is adapted to this
 * (`createAuditServiceSink`, usually behind `createBufferedAuditSink`); tests use
 * {@link createMemoryAuditSink}. A sink that throws is logged; a refusal is never turned into
 * an acceptance, and a record asked for with `{ acknowledged: true }` that the sink cannot
 * deliver makes the broker refuse the action it describes (privileged token issuance).
 */
export interface AuditSink {
  record(event: IdentityAuditEvent, options?: AuditRecordOptions): Promise<void>;
}

/** Collects records in memory (tests, `bulwark up` without an audit service). */
export function createMemoryAuditSink(): AuditSink & { readonly events: IdentityAuditEvent[] } {
  const events: IdentityAuditEvent[] = [];
  return {
    events,
    record: async (event) => {
      events.push(event);
    },
  };
}
