import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { createBufferedAuditSink } from './audit-queue.ts';
import type { AuditSink, IdentityAuditEvent } from './audit-sink.ts';

const event = (action: IdentityAuditEvent['action'], n = 0): IdentityAuditEvent => ({
  time: new Date(n).toISOString(),
  service: 'identity',
  eventType: 'authn',
  action,
  outcome: 'success',
  actor: { sub: `acme/u-${n}` },
});

/** An audit service stand-in that can be down, or refuse one kind of record as invalid. */
function fakeAudit() {
  const got: IdentityAuditEvent[] = [];
  const state = { down: false, invalid: '' };
  const sink: AuditSink = {
    record: async (e) => {
      if (state.down) throw Object.assign(new Error('unavailable'), { code: status.UNAVAILABLE });
      if (e.action === state.invalid)
        throw Object.assign(new Error('bad'), { code: status.INVALID_ARGUMENT, details: 'bad' });
      got.push(e);
    },
  };
  return { got, state, sink };
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bulwark-audit-queue-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('a full queue drops new records, counts and logs them; order is kept', async () => {
  const audit = fakeAudit();
  audit.state.down = true;
  const registry = new Registry();
  const sink = createBufferedAuditSink({
    sink: audit.sink,
    maxQueueRecords: 3,
    retryIntervalMs: 10_000,
    registry,
  });
  for (let i = 0; i < 5; i++) await sink.record(event('login', i));
  await sink.flush();
  expect(sink.queued).toBe(3);
  expect(sink.dropped).toBe(2);
  expect(await registry.getSingleMetricAsString('bulwark_identity_audit_dropped_total')).toMatch(
    / 2$/m,
  );
  audit.state.down = false;
  expect(await sink.flush()).toBe(true);
  expect(audit.got.map((e) => e.actor.sub)).toEqual(['acme/u-0', 'acme/u-1', 'acme/u-2']);
  sink.close();
});

test('a record audit refuses as invalid is dropped and never blocks the ones behind it', async () => {
  const audit = fakeAudit();
  audit.state.invalid = 'key.rotate';
  const sink = createBufferedAuditSink({ sink: audit.sink });
  await sink.record(event('key.rotate', 1));
  await sink.record(event('login', 2));
  await sink.flush();
  expect(audit.got.map((e) => e.action)).toEqual(['login']);
  expect(sink.rejected).toBe(1);
  expect(sink.reachable).toBe(true);
  sink.close();
});

test('an acknowledged record is never just queued: it rejects when audit is down', async () => {
  const audit = fakeAudit();
  audit.state.down = true;
  const sink = createBufferedAuditSink({ sink: audit.sink, retryIntervalMs: 10_000 });
  await expect(sink.record(event('token.issue'), { acknowledged: true })).rejects.toThrow();
  expect(sink.queued).toBe(0);
  // A sink that never answers is bounded too.
  const stuck = createBufferedAuditSink({
    sink: { record: () => new Promise(() => undefined) },
    acknowledgeTimeoutMs: 50,
  });
  await expect(stuck.record(event('token.issue'), { acknowledged: true })).rejects.toThrow(
    'no acknowledgement within 50 ms',
  );
  sink.close();
  stuck.close();
});

test('what was queued on disk when the broker stopped is delivered after a restart', async () => {
  const queueFile = join(dir, 'queue.jsonl');
  const audit = fakeAudit();
  audit.state.down = true;
  const first = createBufferedAuditSink({ sink: audit.sink, queueFile, retryIntervalMs: 10_000 });
  await first.record(event('login', 7));
  await first.flush();
  first.close();
  expect(readFileSync(queueFile, 'utf8')).toContain('acme/u-7');

  audit.state.down = false;
  const second = createBufferedAuditSink({ sink: audit.sink, queueFile });
  await second.flush();
  expect(audit.got.map((e) => e.actor.sub)).toEqual(['acme/u-7']);
  expect(() => readFileSync(queueFile)).toThrow();
  second.close();
});

test('an unreadable queue file starts an empty queue', async () => {
  const queueFile = join(dir, 'queue.jsonl');
  writeFileSync(queueFile, '{not json\n');
  const audit = fakeAudit();
  const sink = createBufferedAuditSink({ sink: audit.sink, queueFile });
  expect(sink.queued).toBe(0);
  sink.close();
});
