import { mkdtemp, readFile, rm, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import type { AuditRecord, Receipt } from '../../../gen/bulwark/audit/v1/audit.ts';
import { createAuditor, EventType, Outcome, type AuditClient } from './audit-guard.ts';
import {
  createWithheldQueue,
  isAmbiguousAppendFailure,
  WITHHELD_REASON,
  type WithheldQueue,
} from './withheld-answers.ts';

const grpcError = (code: number, details: string, trailer?: string) =>
  Object.assign(new Error(details), {
    code,
    details,
    metadata: (() => {
      const md = new Metadata();
      if (trailer) md.set('bulwark-error-code', trailer);
      return md;
    })(),
  });

const receipt = (r: AuditRecord, leafIndex: number): Receipt => ({
  id: r.id,
  leafIndex,
  treeSize: leafIndex + 1,
  leafHash: Buffer.alloc(32),
  logOrigin: 'test/log',
});

/** An audit log in memory whose acknowledgements can be lost after the record is stored. */
function flakyLog() {
  const stored: AuditRecord[] = [];
  let mode: 'ok' | 'lose-ack' | 'down' | 'refuse' = 'ok';
  const client: AuditClient = {
    append: async (r) => {
      if (mode === 'down')
        throw grpcError(status.UNAVAILABLE, 'No connection established. Last error: ECONNREFUSED');
      if (mode === 'refuse')
        throw grpcError(status.INVALID_ARGUMENT, 'bad record', 'ERR_AUDIT_INVALID_RECORD');
      stored.push(r);
      if (mode === 'lose-ack') throw grpcError(status.UNAVAILABLE, 'Connection dropped');
      return receipt(r, stored.length - 1);
    },
  };
  return { stored, client, set: (m: typeof mode) => (mode = m) };
}

function stack(client: AuditClient, file?: string) {
  const auditor = createAuditor({ client, withheld: () => queue });
  const queue: WithheldQueue = createWithheldQueue({
    append: (r) => auditor.record(r),
    retryMs: 5,
    maxRetryMs: 20,
    ...(file ? { file } : {}),
  });
  return { auditor, queue };
}

const answer = (requestId: string) => ({
  eventType: EventType.EVENT_TYPE_INFERENCE,
  action: 'infer',
  outcome: Outcome.OUTCOME_SUCCESS,
  traceId: 'a'.repeat(32),
  spanId: 'b'.repeat(16),
  actor: { sub: 'acme/ann', org: 'acme', clientId: 'c', peerSpiffeId: '', sourceAddress: '' },
  inputDigest: 'sha256:00',
  attributes: { request_id: requestId },
});

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'bulwark-withheld-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

test('only a lost acknowledgement is ambiguous, not a refusal or a call never sent', () => {
  expect(isAmbiguousAppendFailure(grpcError(status.UNAVAILABLE, 'Connection dropped'))).toBe(true);
  expect(isAmbiguousAppendFailure(grpcError(status.DEADLINE_EXCEEDED, 'Deadline exceeded'))).toBe(
    true,
  );
  expect(isAmbiguousAppendFailure(new Error('audit acknowledgement timed out'))).toBe(true);
  expect(
    isAmbiguousAppendFailure(grpcError(status.UNAVAILABLE, 'No connection established. x')),
  ).toBe(false);
  expect(isAmbiguousAppendFailure(grpcError(status.PERMISSION_DENIED, 'no'))).toBe(false);
  expect(
    isAmbiguousAppendFailure(
      grpcError(status.UNAVAILABLE, 'store down', 'ERR_AUDIT_STORE_UNAVAILABLE'),
    ),
  ).toBe(false);
});

test('an answer whose acknowledgement was lost is noted as withheld once audit is back', async () => {
  const log = flakyLog();
  const { auditor, queue } = stack(log.client, path.join(dir, 'withheld.jsonl'));
  await queue.start();
  log.set('lose-ack');
  await expect(auditor.record(answer('req-1'), { answer: true })).rejects.toMatchObject({
    code: 'ERR_INFERENCE_AUDIT_UNAVAILABLE',
  });
  // A refusal record that is not an answer, and a clear refusal, are not queued.
  await expect(auditor.record(answer('req-2'))).rejects.toBeDefined();
  log.set('refuse');
  await expect(auditor.record(answer('req-3'), { answer: true })).rejects.toBeDefined();
  log.set('down');
  await expect(auditor.record(answer('req-4'), { answer: true })).rejects.toBeDefined();
  expect(queue.size()).toBe(1);
  expect(await readFile(path.join(dir, 'withheld.jsonl'), 'utf8')).toContain('req-1');
  // Still down: nothing delivered, nothing dropped.
  expect(await queue.drain()).toBe(1);
  log.set('ok');
  expect(await queue.drain()).toBe(0);
  const original = log.stored.find((r) => r.attributes['request_id'] === 'req-1')!;
  const note = log.stored.at(-1)!;
  expect(note).toMatchObject({
    eventType: EventType.EVENT_TYPE_INFERENCE,
    outcome: Outcome.OUTCOME_ERROR,
    reason: WITHHELD_REASON,
    traceId: original.traceId,
    actor: original.actor,
    attributes: { request_id: 'req-1', withholds: original.id },
  });
  expect(await readFile(path.join(dir, 'withheld.jsonl'), 'utf8')).toBe('');
  await queue.close();
});

test('the queue survives a restart of inference before it was delivered', async () => {
  const file = path.join(dir, 'state', 'withheld.jsonl');
  const log = flakyLog();
  const first = stack(log.client, file);
  await first.queue.start();
  log.set('lose-ack');
  for (const id of ['r1', 'r2', 'r3'])
    await expect(first.auditor.record(answer(id), { answer: true })).rejects.toBeDefined();
  log.set('down');
  await first.queue.close(); // the process ends with the queue undelivered
  // A crash mid-write leaves a torn last line: it is skipped, the rest is kept.
  await appendFile(file, '{"recordId":"torn');
  const second = stack(log.client, file);
  await second.queue.start();
  expect(second.queue.size()).toBe(3);
  // The torn line is gone from the file: a later append starts on a line of its own.
  expect((await readFile(file, 'utf8')).split('\n').filter(Boolean)).toHaveLength(3);
  log.set('ok');
  // (A delivery attempt started while audit was down may still be finishing: try again.)
  let left = await second.queue.drain();
  for (let i = 0; i < 50 && left > 0; i++) left = await second.queue.drain();
  expect(left).toBe(0);
  const notes = log.stored.filter((r) => r.reason === WITHHELD_REASON);
  const originals = log.stored.filter((r) => r.outcome === Outcome.OUTCOME_SUCCESS);
  // At least once: a note whose own acknowledgement was lost is sent again (harmless).
  expect([...new Set(notes.map((n) => n.attributes['withholds']))].sort()).toEqual(
    originals.map((o) => o.id).sort(),
  );
  await second.queue.close();
});

test('delivery retries on its own once audit comes back', async () => {
  const log = flakyLog();
  const { auditor, queue } = stack(log.client);
  log.set('lose-ack');
  await expect(auditor.record(answer('x'), { answer: true })).rejects.toBeDefined();
  log.set('ok');
  for (let i = 0; i < 100 && queue.size() > 0; i++) await new Promise((r) => setTimeout(r, 10));
  expect(queue.size()).toBe(0);
  expect(log.stored.filter((r) => r.reason === WITHHELD_REASON)).toHaveLength(1);
  await queue.close();
});

test('the queue is bounded', async () => {
  const log = flakyLog();
  const auditor = createAuditor({ client: log.client, withheld: () => queue });
  const queue: WithheldQueue = createWithheldQueue({
    append: (r) => auditor.record(r),
    maxEntries: 2,
    retryMs: 1e6,
  });
  log.set('lose-ack');
  for (const id of ['a', 'b', 'c'])
    await expect(auditor.record(answer(id), { answer: true })).rejects.toBeDefined();
  expect(queue.size()).toBe(2);
  await queue.close();
});
