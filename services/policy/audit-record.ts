import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { EventType, Outcome, type AuditRecord } from '../../gen/bulwark/audit/v1/audit.ts';
import type { DecisionRecord } from './decision-record.ts';

/** Replaces control characters (which audit refuses) and bounds the length. */
function flatten(text: string): string {
  let out = '';
  for (const ch of Array.from(text).slice(0, 1000)) {
    const c = ch.codePointAt(0)!;
    out += c < 0x20 || c === 0x7f ? ' ' : ch;
  }
  return out;
}

const SPIFFE = /^spiffe:\/\/[^/\s]+\/\S*$/;

/** The `bulwark.audit.v1` record of a decision (`note` marks fail-closed refusals). */
export function toAuditRecord(r: DecisionRecord, service: string, note?: string): AuditRecord {
  const model = r.object.startsWith('model:') ? r.object.slice('model:'.length) : '';
  const at = model.lastIndexOf('@');
  const attributes: Record<string, string> = { object: r.object, via: r.via };
  if (r.matchedRule) attributes.matched_rule = r.matchedRule;
  if (note) attributes.note = note;
  return {
    id: randomUUID(),
    time: r.time,
    service,
    eventType: r.object.startsWith('policy:')
      ? EventType.EVENT_TYPE_POLICY_ADMIN
      : EventType.EVENT_TYPE_AUTHZ,
    actor: {
      sub: r.subject,
      org: r.org,
      clientId: r.clientId ?? '',
      // Only well-formed values: one malformed field would make audit refuse the record.
      peerSpiffeId: r.peerSpiffeId && SPIFFE.test(r.peerSpiffeId) ? r.peerSpiffeId : '',
      sourceAddress: r.sourceAddress && isIP(r.sourceAddress) ? r.sourceAddress : '',
    },
    action: r.action,
    target: model
      ? {
          modelName: at > 0 ? model.slice(0, at) : model,
          modelVersion: at > 0 ? model.slice(at + 1) : '',
          bundleDigest: '',
        }
      : undefined,
    outcome: r.allowed ? Outcome.OUTCOME_SUCCESS : Outcome.OUTCOME_DENIED,
    // Audit refuses control characters; a reason is for people, so flatten them.
    reason: flatten(r.reason),
    policyRevision: r.revision,
    inputDigest: '',
    outputDigest: '',
    latencyUs: 0,
    traceId: '',
    spanId: '',
    attributes,
    submittedBy: '',
  };
}

/** JSON form for the disk queue (dates as ISO text). */
export function serialize(record: AuditRecord): string {
  return JSON.stringify({ ...record, time: record.time?.toISOString() });
}

export function deserialize(line: string): AuditRecord {
  const raw = JSON.parse(line) as AuditRecord & { time?: string };
  return { ...raw, time: raw.time ? new Date(raw.time) : undefined } as AuditRecord;
}
