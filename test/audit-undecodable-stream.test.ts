/**
 * An AppendBatch stream with a record that does not decode, against the real audit service over
 * mTLS: the caller is told INVALID_ARGUMENT (not a server fault) and the log holds none of the
 * batch, as when a client fails mid-stream.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import {
  AppendBatchRequest,
  AppendBatchResponse,
  AuditRecord,
  EventType,
  Outcome,
} from '../gen/bulwark/audit/v1/audit.ts';
import { openSqliteStore } from '../services/audit/store/sqlite-store.ts';
import { startAuditHarness, type AuditHarness } from './support/audit-service.ts';

const APPEND_BATCH = '/bulwark.audit.v1.AuditService/AppendBatch';
const raw = (bytes: Buffer) => bytes;
const id = (n: string) => `spiffe://bulwark.local/svc/${n}`;

function varint(value: bigint): number[] {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

function record(i: number): AuditRecord {
  return AuditRecord.fromPartial({
    service: 'policy',
    eventType: EventType.EVENT_TYPE_AUTHZ,
    actor: { sub: `acme/user${i}`, org: 'acme' },
    action: 'authorize',
    outcome: Outcome.OUTCOME_SUCCESS,
  });
}

const good = (i: number) => Buffer.from(AppendBatchRequest.encode({ record: record(i) }).finish());

/** A complete record whose latency_us (uint64, field 13) is 2^60. */
function outOfRange(i: number): Buffer {
  const body = Buffer.concat([
    Buffer.from(AuditRecord.encode(record(i)).finish()),
    Buffer.from([13 << 3, ...varint(2n ** 60n)]),
  ]);
  return Buffer.concat([Buffer.from([(1 << 3) | 2, ...varint(BigInt(body.length))]), body]);
}

describe('AppendBatch with an undecodable record', () => {
  let h: AuditHarness;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'audit-undecodable-'));
    h = await startAuditHarness({
      store: openSqliteStore({ path: join(dir, 'audit.db') }),
      signingKey: generateKeyPairSync('ed25519').privateKey,
      appenders: [id('policy')],
      readers: [id('auditor')],
    });
  });
  afterAll(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function appendBatch(messages: Buffer[]) {
    return new Promise<{ err: ServiceError | null; response?: Buffer }>((resolve) => {
      const call = h
        .client('policy')
        .makeClientStreamRequest(APPEND_BATCH, raw, raw, (err, response) =>
          resolve({ err, response }),
        );
      for (const m of messages) call.write(m);
      call.end();
    });
  }

  it('is refused as INVALID_ARGUMENT and appends none of the batch', async () => {
    const before = h.audit.log.size();
    const { err } = await appendBatch([good(1), good(2), outOfRange(3), good(4)]);
    expect({ code: err?.code, details: err?.details }).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'request does not decode: an integer field is beyond ±(2^53 - 1)',
    });
    expect(h.audit.log.size()).toBe(before);

    // The service keeps serving, and nothing of the refused batch turns up afterwards.
    const next = await appendBatch([good(5), good(6)]);
    expect(next.err).toBeNull();
    const receipts = AppendBatchResponse.decode(next.response!).receipts;
    expect(receipts.map((r) => r.leafIndex)).toEqual([before, before + 1]);
    expect(h.audit.log.size()).toBe(before + 2);
  });
});
