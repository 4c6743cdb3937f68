import type { AuditRecord, Receipt } from '../../../gen/bulwark/audit/v1/audit.ts';
import { createAuditor, EventType, Outcome } from './audit-guard.ts';

const event = {
  eventType: EventType.EVENT_TYPE_INFERENCE,
  action: 'infer',
  outcome: Outcome.OUTCOME_SUCCESS,
};

test('returns the receipt once the audit service acknowledges the record', async () => {
  const seen: AuditRecord[] = [];
  const auditor = createAuditor({
    client: {
      append: async (r) => {
        seen.push(r);
        return {
          id: r.id,
          leafIndex: 41,
          treeSize: 42,
          leafHash: Buffer.alloc(32),
          logOrigin: 'bulwark.local/audit',
        } satisfies Receipt;
      },
    },
    now: () => new Date('2026-01-01T00:00:00Z'),
  });
  expect(await auditor.record({ ...event, reason: 'r' })).toEqual({
    logId: 'bulwark.local/audit',
    leafIndex: 41,
  });
  expect(seen[0]).toMatchObject({
    service: 'inference',
    action: 'infer',
    reason: 'r',
    time: new Date('2026-01-01T00:00:00Z'),
  });
  expect(seen[0]!.id).toMatch(/^[0-9a-f-]{36}$/);
});

test('an audit service that refuses or never answers makes the call UNAVAILABLE', async () => {
  const down = createAuditor({
    client: { append: () => Promise.reject(new Error('ECONNREFUSED')) },
  });
  await expect(down.record(event)).rejects.toMatchObject({
    code: 'ERR_INFERENCE_AUDIT_UNAVAILABLE',
    message: 'audit service unavailable: the request was not answered',
  });
  const stuck = createAuditor({
    client: { append: () => new Promise<never>(() => {}) },
    timeoutMs: 20,
  });
  await expect(stuck.record(event)).rejects.toMatchObject({
    code: 'ERR_INFERENCE_AUDIT_UNAVAILABLE',
  });
});
