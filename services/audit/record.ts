/**
 * Audit records: validation on append, the canonical leaf (RFC 8785 JSON of the record) and
 * the way back from a stored leaf to a record. Empty strings and zero values are left out of
 * the leaf, since protobuf cannot tell them from unset fields.
 */
import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import {
  EventType,
  Outcome,
  type AuditRecord,
  type Actor,
  type Target,
} from '../../gen/bulwark/audit/v1/audit.ts';
import { AuditError } from './errors.ts';
import { canonicalBytes } from './jcs.ts';

/** Leaf format version, written into every leaf so the format can evolve. */
export const LEAF_VERSION = 1;

export const EVENT_TYPE_NAMES = {
  [EventType.EVENT_TYPE_AUTHN]: 'authn',
  [EventType.EVENT_TYPE_AUTHZ]: 'authz',
  [EventType.EVENT_TYPE_INFERENCE]: 'inference',
  [EventType.EVENT_TYPE_MODEL_ADMIN]: 'model-admin',
  [EventType.EVENT_TYPE_POLICY_ADMIN]: 'policy-admin',
  [EventType.EVENT_TYPE_ACCESS_LOG]: 'access-log',
} as const;
export type EventTypeName = (typeof EVENT_TYPE_NAMES)[keyof typeof EVENT_TYPE_NAMES];

export const OUTCOME_NAMES = {
  [Outcome.OUTCOME_SUCCESS]: 'success',
  [Outcome.OUTCOME_DENIED]: 'denied',
  [Outcome.OUTCOME_ERROR]: 'error',
} as const;
export type OutcomeName = (typeof OUTCOME_NAMES)[keyof typeof OUTCOME_NAMES];

export interface RecordLimits {
  /** Longest string field, in characters. Default 1024. */
  maxFieldLength: number;
  /** Most attribute entries. Default 32. */
  maxAttributes: number;
  /** Longest leaf (canonical JSON), in bytes. Default 16 KiB. */
  maxRecordBytes: number;
}

export const DEFAULT_RECORD_LIMITS: RecordLimits = {
  maxFieldLength: 1024,
  maxAttributes: 32,
  maxRecordBytes: 16 * 1024,
};

/** The leaf object: what is canonicalised and hashed. */
export interface LeafRecord {
  v: number;
  id: string;
  time: string;
  service?: string;
  eventType: EventTypeName;
  actor: {
    sub?: string;
    org?: string;
    clientId?: string;
    peerSpiffeId?: string;
    sourceAddress?: string;
  };
  action?: string;
  target?: { modelName?: string; modelVersion?: string; bundleDigest?: string };
  outcome: OutcomeName;
  reason?: string;
  policyRevision?: string;
  inputDigest?: string;
  outputDigest?: string;
  latencyUs?: number;
  traceId?: string;
  spanId?: string;
  attributes?: Record<string, string>;
  submittedBy?: string;
}

// C0 and C1 controls and DEL; lone surrogates cannot be canonicalised either.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const ANY_SURROGATE = /[\uD800-\uDFFF]/;
const ID = /^[A-Za-z0-9._:-]{1,128}$/;
const DIGEST = /^[a-z0-9-]{1,16}:[0-9a-f]{16,128}$/;
const TRACE_ID = /^(?!0{32})[0-9a-f]{32}$/;
const SPAN_ID = /^(?!0{16})[0-9a-f]{16}$/;
const MAX_LATENCY_US = 10 ** 12; // about 11.6 days
const MIN_TIME = Date.UTC(1970, 0, 1);
const MAX_TIME = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

function invalid(field: string, problem: string): AuditError {
  return new AuditError('ERR_AUDIT_INVALID_RECORD', `${field} ${problem}`);
}

function text(
  field: string,
  value: unknown,
  limits: RecordLimits,
  max = limits.maxFieldLength,
): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw invalid(field, 'must be a string');
  if (value.length > max) throw invalid(field, `is longer than ${max} characters`);
  if (CONTROL.test(value)) throw invalid(field, 'contains control characters');
  // The simple scan first: most values hold no surrogate, and the exact test is slower.
  if (ANY_SURROGATE.test(value) && LONE_SURROGATE.test(value))
    throw invalid(field, 'is not valid Unicode');
  return value;
}

function matching(
  field: string,
  value: unknown,
  pattern: RegExp,
  what: string,
  limits: RecordLimits,
): string | undefined {
  const s = text(field, value, limits);
  if (s !== undefined && !pattern.test(s)) throw invalid(field, `must be ${what}`);
  return s;
}

// A plain loop: this runs for every appended record, and entries/filter/fromEntries allocate.
function compact<T extends object>(obj: T): T | undefined {
  const out: Record<string, unknown> = {};
  let any = false;
  for (const key of Object.keys(obj)) {
    const v = (obj as Record<string, unknown>)[key];
    if (v !== undefined) {
      out[key] = v;
      any = true;
    }
  }
  return any ? (out as T) : undefined;
}

export interface ToLeafContext {
  /** Time used when the record has none. */
  now: Date;
  /** SPIFFE ID (or other identity) of the appender, recorded in `submittedBy`. */
  submittedBy?: string;
  limits?: RecordLimits;
}

/**
 * Validates a record and builds its leaf. Throws `ERR_AUDIT_INVALID_RECORD` naming the first
 * bad field (`record.actor.sub`, ...).
 */
export function recordToLeaf(
  record: AuditRecord | undefined,
  ctx: ToLeafContext,
): { leaf: LeafRecord; data: Buffer } {
  const limits = ctx.limits ?? DEFAULT_RECORD_LIMITS;
  if (!record) throw invalid('record', 'is required');
  const eventType = EVENT_TYPE_NAMES[record.eventType as keyof typeof EVENT_TYPE_NAMES];
  if (!eventType) throw invalid('record.event_type', 'is missing or unknown');
  const outcome = OUTCOME_NAMES[record.outcome as keyof typeof OUTCOME_NAMES];
  if (!outcome) throw invalid('record.outcome', 'is missing or unknown');
  const a: Actor | undefined = record.actor;
  if (!a) throw invalid('record.actor', 'is required');
  const actor = {
    sub: text('record.actor.sub', a.sub, limits),
    org: text('record.actor.org', a.org, limits),
    clientId: text('record.actor.client_id', a.clientId, limits),
    peerSpiffeId: matching(
      'record.actor.peer_spiffe_id',
      a.peerSpiffeId,
      /^spiffe:\/\/[^/\s]+\/\S*$/,
      'a SPIFFE ID',
      limits,
    ),
    sourceAddress: text('record.actor.source_address', a.sourceAddress, limits),
  };
  if (actor.sourceAddress !== undefined && isIP(actor.sourceAddress) === 0) {
    throw invalid('record.actor.source_address', 'must be an IP address');
  }
  if (actor.sub === undefined && actor.peerSpiffeId === undefined) {
    throw invalid('record.actor', 'needs sub or peer_spiffe_id');
  }
  const t: Target | undefined = record.target;
  const target = t
    ? compact({
        modelName: text('record.target.model_name', t.modelName, limits),
        modelVersion: text('record.target.model_version', t.modelVersion, limits),
        bundleDigest: matching(
          'record.target.bundle_digest',
          t.bundleDigest,
          DIGEST,
          '"<alg>:<hex>"',
          limits,
        ),
      })
    : undefined;
  let time: Date = ctx.now;
  if (record.time !== undefined) {
    const ms = record.time instanceof Date ? record.time.getTime() : Number.NaN;
    if (!Number.isFinite(ms) || ms < MIN_TIME || ms > MAX_TIME)
      throw invalid('record.time', 'is out of range');
    time = new Date(ms);
  }
  const latency = record.latencyUs ?? 0;
  if (!Number.isSafeInteger(latency) || latency < 0 || latency > MAX_LATENCY_US) {
    throw invalid('record.latency_us', 'is out of range');
  }
  const attrs = record.attributes ?? {};
  const attrKeys = Object.keys(attrs);
  if (attrKeys.length > limits.maxAttributes)
    throw invalid('record.attributes', `has more than ${limits.maxAttributes} entries`);
  const attributes: Record<string, string> = {};
  for (const key of attrKeys) {
    if (!/^[A-Za-z0-9._:/-]{1,64}$/.test(key))
      throw invalid('record.attributes', `key ${JSON.stringify(key.slice(0, 64))} is not allowed`);
    attributes[key] = text(`record.attributes[${key}]`, attrs[key], limits) ?? '';
  }
  const id =
    record.id === '' || record.id === undefined
      ? randomUUID()
      : matching('record.id', record.id, ID, '1-128 characters of [A-Za-z0-9._:-]', limits);
  const leaf: LeafRecord = {
    v: LEAF_VERSION,
    id: id as string,
    time: time.toISOString(),
    service: text('record.service', record.service, limits),
    eventType,
    actor: compact(actor) ?? {},
    action: text('record.action', record.action, limits),
    target,
    outcome,
    reason: text('record.reason', record.reason, limits),
    policyRevision: text('record.policy_revision', record.policyRevision, limits),
    inputDigest: matching(
      'record.input_digest',
      record.inputDigest,
      DIGEST,
      '"<alg>:<hex>"',
      limits,
    ),
    outputDigest: matching(
      'record.output_digest',
      record.outputDigest,
      DIGEST,
      '"<alg>:<hex>"',
      limits,
    ),
    latencyUs: latency === 0 ? undefined : latency,
    traceId: matching(
      'record.trace_id',
      record.traceId,
      TRACE_ID,
      '32 lowercase hex digits',
      limits,
    ),
    spanId: matching('record.span_id', record.spanId, SPAN_ID, '16 lowercase hex digits', limits),
    attributes: attrKeys.length > 0 ? attributes : undefined,
    submittedBy: ctx.submittedBy ? ctx.submittedBy.slice(0, limits.maxFieldLength) : undefined,
  };
  const data = canonicalBytes(leaf);
  if (data.length > limits.maxRecordBytes)
    throw invalid('record', `is larger than ${limits.maxRecordBytes} bytes`);
  return { leaf, data };
}

const EVENT_TYPE_BY_NAME = Object.fromEntries(
  Object.entries(EVENT_TYPE_NAMES).map(([k, v]) => [v, Number(k)]),
) as Record<string, EventType>;
const OUTCOME_BY_NAME = Object.fromEntries(
  Object.entries(OUTCOME_NAMES).map(([k, v]) => [v, Number(k)]),
) as Record<string, Outcome>;

export function eventTypeFromName(name: string): EventType {
  return EVENT_TYPE_BY_NAME[name] ?? EventType.EVENT_TYPE_UNSPECIFIED;
}

export function outcomeFromName(name: string): Outcome {
  return OUTCOME_BY_NAME[name] ?? Outcome.OUTCOME_UNSPECIFIED;
}

/** Parses stored leaf data back into a record (for Query and export). */
export function leafToRecord(data: Uint8Array): AuditRecord {
  const leaf = JSON.parse(Buffer.from(data).toString('utf8')) as LeafRecord;
  return {
    id: leaf.id,
    time: new Date(leaf.time),
    service: leaf.service ?? '',
    eventType: eventTypeFromName(leaf.eventType),
    actor: {
      sub: leaf.actor?.sub ?? '',
      org: leaf.actor?.org ?? '',
      clientId: leaf.actor?.clientId ?? '',
      peerSpiffeId: leaf.actor?.peerSpiffeId ?? '',
      sourceAddress: leaf.actor?.sourceAddress ?? '',
    },
    action: leaf.action ?? '',
    target: leaf.target
      ? {
          modelName: leaf.target.modelName ?? '',
          modelVersion: leaf.target.modelVersion ?? '',
          bundleDigest: leaf.target.bundleDigest ?? '',
        }
      : undefined,
    outcome: outcomeFromName(leaf.outcome),
    reason: leaf.reason ?? '',
    policyRevision: leaf.policyRevision ?? '',
    inputDigest: leaf.inputDigest ?? '',
    outputDigest: leaf.outputDigest ?? '',
    latencyUs: leaf.latencyUs ?? 0,
    traceId: leaf.traceId ?? '',
    spanId: leaf.spanId ?? '',
    attributes: leaf.attributes ?? {},
    submittedBy: leaf.submittedBy ?? '',
  };
}
