import { AuditRecord, EventType, Outcome } from '../../gen/bulwark/audit/v1/audit.ts';
import { leafToRecord, recordToLeaf } from './record.ts';

const now = new Date('2026-01-02T03:04:05.678Z');

function record(overrides: Partial<AuditRecord> = {}): AuditRecord {
  return AuditRecord.fromPartial({
    id: 'rec-1',
    service: 'inference',
    eventType: EventType.EVENT_TYPE_INFERENCE,
    actor: { sub: 'acme/alice', org: 'acme', peerSpiffeId: 'spiffe://bulwark.local/svc/inference' },
    action: 'infer',
    target: { modelName: 'iris', modelVersion: '3', bundleDigest: `sha256:${'ab'.repeat(32)}` },
    outcome: Outcome.OUTCOME_SUCCESS,
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    latencyUs: 1234,
    attributes: { 'batch.size': '4' },
    ...overrides,
  });
}

describe('audit records', () => {
  it('canonicalises to sorted, compact JSON with the service clock when time is unset', () => {
    const { data, leaf } = recordToLeaf(record(), {
      now,
      submittedBy: 'spiffe://bulwark.local/svc/inference',
    });
    const text = data.toString('utf8');
    expect(text.startsWith('{"action":"infer","actor":{"org":"acme","peerSpiffeId"')).toBe(true);
    expect(leaf.time).toBe('2026-01-02T03:04:05.678Z');
    expect(text).not.toContain('""');
    const back = leafToRecord(data);
    expect(back.actor?.sub).toBe('acme/alice');
    expect(back.eventType).toBe(EventType.EVENT_TYPE_INFERENCE);
    expect(back.submittedBy).toBe('spiffe://bulwark.local/svc/inference');
    // Same record, same bytes: the leaf is a pure function of the record.
    expect(
      recordToLeaf(back, { now: new Date(0), submittedBy: back.submittedBy }).data.equals(data),
    ).toBe(true);
  });

  it('assigns an id when none is given', () => {
    expect(recordToLeaf(record({ id: '' }), { now }).leaf.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  const refusals: Array<[string, Partial<AuditRecord>, RegExp]> = [
    ['unknown event type', { eventType: 42 as EventType }, /record\.event_type/],
    [
      'unspecified event type',
      { eventType: EventType.EVENT_TYPE_UNSPECIFIED },
      /record\.event_type/,
    ],
    ['missing outcome', { outcome: Outcome.OUTCOME_UNSPECIFIED }, /record\.outcome/],
    ['missing actor', { actor: undefined }, /record\.actor is required/],
    [
      'empty actor',
      { actor: { sub: '', org: 'x', clientId: '', peerSpiffeId: '', sourceAddress: '' } },
      /record\.actor needs/,
    ],
    ['control character', { action: 'in\u0000fer' }, /record\.action contains control/],
    ['C1 control', { reason: 'a\u009bb' }, /record\.reason contains control/],
    ['oversized field', { reason: 'x'.repeat(1025) }, /record\.reason is longer/],
    ['lone surrogate', { service: 'a\ud800' }, /record\.service is not valid Unicode/],
    ['bad trace id', { traceId: 'XYZ' }, /record\.trace_id/],
    ['zero trace id', { traceId: '0'.repeat(32) }, /record\.trace_id/],
    ['bad span id', { spanId: '123' }, /record\.span_id/],
    ['bad digest', { inputDigest: 'raw tensor data' }, /record\.input_digest/],
    ['bad id', { id: 'has space' }, /record\.id/],
    [
      'bad address',
      { actor: { sub: 'a', org: '', clientId: '', peerSpiffeId: '', sourceAddress: 'nowhere' } },
      /source_address/,
    ],
    [
      'bad spiffe id',
      { actor: { sub: '', org: '', clientId: '', peerSpiffeId: 'http://x', sourceAddress: '' } },
      /peer_spiffe_id/,
    ],
    ['invalid time', { time: new Date(Number.NaN) }, /record\.time/],
    ['negative latency', { latencyUs: -1 }, /record\.latency_us/],
    [
      'too many attributes',
      { attributes: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) },
      /record\.attributes has more/,
    ],
    ['bad attribute key', { attributes: { 'a b': 'v' } }, /record\.attributes/],
    ['attribute control char', { attributes: { k: '\u0007' } }, /record\.attributes\[k\]/],
  ];
  it.each(refusals)('refuses %s naming the field', (_name, overrides, message) => {
    expect(() => recordToLeaf(record(overrides), { now })).toThrow(message);
    try {
      recordToLeaf(record(overrides), { now });
    } catch (err) {
      expect((err as { code: string }).code).toBe('ERR_AUDIT_INVALID_RECORD');
    }
  });

  it('refuses a record larger than the configured limit', () => {
    const attributes = Object.fromEntries(
      Array.from({ length: 20 }, (_, i) => [`k${i}`, 'v'.repeat(1000)]),
    );
    expect(() => recordToLeaf(record({ attributes }), { now })).toThrow(
      /record is larger than 16384 bytes/,
    );
    expect(() =>
      recordToLeaf(record(), {
        now,
        limits: { maxFieldLength: 1024, maxAttributes: 32, maxRecordBytes: 100 },
      }),
    ).toThrow(/larger than 100/);
  });

  it('refuses a missing record', () => {
    expect(() => recordToLeaf(undefined, { now })).toThrow(/record is required/);
  });
});
