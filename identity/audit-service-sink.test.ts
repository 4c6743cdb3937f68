import { EventType, Outcome, type AppendRequest } from '../gen/bulwark/audit/v1/audit.ts';
import { createAuditServiceSink, toAuditRecord } from './audit-service-sink.ts';
import type { IdentityAuditEvent } from './audit-sink.ts';

const event: IdentityAuditEvent = {
  time: '2026-01-02T03:04:05.000Z',
  service: 'identity',
  eventType: 'authn',
  action: 'token.exchange',
  outcome: 'failure',
  reason: 'subject token audience not accepted',
  actor: { org: 'acme', clientId: 'acme-gateway', sourceAddress: '127.0.0.1' },
  target: {
    resource: 'urn:bulwark:inference',
    grantType: 'urn:ietf:params:oauth:grant-type:token-exchange',
  },
};

test('maps a broker event onto an audit record', () => {
  const record = toAuditRecord(event);
  expect(record).toMatchObject({
    service: 'identity',
    eventType: EventType.EVENT_TYPE_AUTHN,
    action: 'token.exchange',
    outcome: Outcome.OUTCOME_DENIED,
    reason: 'subject token audience not accepted',
    // The audit log needs a subject: a service client is named as the mesh names it.
    actor: {
      org: 'acme',
      clientId: 'acme-gateway',
      sourceAddress: '127.0.0.1',
      sub: 'acme/acme-gateway',
    },
    attributes: { resource: 'urn:bulwark:inference' },
  });
  expect(record.time?.toISOString()).toBe(event.time);
});

test('every record has a subject and carries the trace of its request', () => {
  const rotate = toAuditRecord({ ...event, action: 'key.rotate', actor: {} });
  expect(rotate.actor?.sub).toBe('bulwark/identity');
  const publish = toAuditRecord({
    ...event,
    action: 'key.publish',
    actor: {},
    target: {
      kid: 'k2',
      publishedAt: '2026-01-01T23:58:00.000Z',
      activatesAt: '2026-01-02T00:00:00.000Z',
      previousKid: 'k1',
    },
  });
  expect(publish.actor?.sub).toBe('bulwark/identity');
  expect(publish.attributes).toEqual({
    kid: 'k2',
    publishedAt: '2026-01-01T23:58:00.000Z',
    activatesAt: '2026-01-02T00:00:00.000Z',
    previousKid: 'k1',
  });
  const anonymous = toAuditRecord({ ...event, action: 'token.refuse', actor: {} });
  expect(anonymous.actor?.sub).toBe('anonymous');
  const person = toAuditRecord({ ...event, actor: { sub: 'acme/u-1001', clientId: 'x' } });
  expect(person.actor?.sub).toBe('acme/u-1001');
  const traced = toAuditRecord({
    ...event,
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
  });
  expect(traced).toMatchObject({
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
  });
});

test('the sink appends through the client and reports its failure', async () => {
  const sent: AppendRequest[] = [];
  let fail = false;
  const client = {
    append: (req: AppendRequest, _md: unknown, _opts: unknown, cb: (err: Error | null) => void) => {
      sent.push(req);
      cb(fail ? new Error('unavailable') : null);
    },
  };
  const sink = createAuditServiceSink(client as never);
  await sink.record(event);
  expect(sent).toHaveLength(1);
  expect(sent[0]?.record?.action).toBe('token.exchange');
  fail = true;
  await expect(sink.record(event)).rejects.toThrow('unavailable');
});
