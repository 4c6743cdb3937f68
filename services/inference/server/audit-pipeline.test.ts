import type { AuditRecord, Receipt } from '../../../gen/bulwark/audit/v1/audit.ts';
import { createAuditPipeline, type BatchingAuditTransport } from './audit-pipeline.ts';

const record = (id: string) => ({ id }) as AuditRecord;

/** A transport whose calls stay open until the test settles them. */
function heldTransport() {
  const calls: {
    kind: 'append' | 'batch';
    records: AuditRecord[];
    resolve: (r: Receipt[]) => void;
    reject: (e: unknown) => void;
  }[] = [];
  let next = 0;
  const receiptsFor = (records: AuditRecord[]) =>
    records.map((r) => ({ id: r.id, leafIndex: next++ }) as Receipt);
  const transport: BatchingAuditTransport = {
    append: (r) =>
      new Promise((resolve, reject) =>
        calls.push({ kind: 'append', records: [r], resolve: (x) => resolve(x[0]!), reject }),
      ),
    appendBatch: (records) =>
      new Promise((resolve, reject) =>
        calls.push({ kind: 'batch', records: [...records], resolve, reject }),
      ),
  };
  const ack = (i: number) => calls[i]!.resolve(receiptsFor(calls[i]!.records));
  return { calls, transport, ack, receiptsFor };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('audit pipeline', () => {
  it('sends a lone record at once with a plain Append', async () => {
    const { calls, transport, ack } = heldTransport();
    const audit = createAuditPipeline(transport);
    const receipt = audit.append(record('a'));
    expect(calls.map((c) => c.kind)).toEqual(['append']);
    ack(0);
    await expect(receipt).resolves.toMatchObject({ id: 'a', leafIndex: 0 });
  });

  it('gathers records that arrive while the line is busy into one AppendBatch', async () => {
    const { calls, transport, ack } = heldTransport();
    const audit = createAuditPipeline(transport, { maxInFlight: 2 });
    const first = [audit.append(record('a')), audit.append(record('b'))];
    const waiting = ['c', 'd', 'e'].map((id) => audit.append(record(id)));
    expect(calls.map((c) => c.kind)).toEqual(['append', 'append']);
    ack(0);
    await first[0];
    await tick();
    expect(calls[2]).toMatchObject({ kind: 'batch' });
    expect(calls[2]!.records.map((r) => r.id)).toEqual(['c', 'd', 'e']);
    ack(2);
    const receipts = await Promise.all(waiting);
    // Each record gets its own receipt, not a neighbour's.
    expect(receipts.map((r) => r.id)).toEqual(['c', 'd', 'e']);
    ack(1);
    await expect(first[1]).resolves.toMatchObject({ id: 'b' });
  });

  it('never sends more than maxBatch records in one stream', async () => {
    const { calls, transport, ack } = heldTransport();
    const audit = createAuditPipeline(transport, { maxInFlight: 1, maxBatch: 2 });
    const all = ['a', 'b', 'c', 'd', 'e'].map((id) => audit.append(record(id)));
    for (let i = 0; i < 3; i++) {
      await tick();
      ack(i);
    }
    await Promise.all(all);
    expect(calls.map((c) => c.records.length)).toEqual([1, 2, 2]);
  });

  it('fails every record of a batch whose append failed: nothing is answered unaudited', async () => {
    const { calls, transport, ack } = heldTransport();
    const audit = createAuditPipeline(transport, { maxInFlight: 1 });
    const lone = audit.append(record('a'));
    const batch = ['b', 'c'].map((id) => audit.append(record(id)));
    ack(0);
    await lone;
    await tick();
    calls[1]!.reject(Object.assign(new Error('unavailable'), { code: 14 }));
    for (const p of batch) await expect(p).rejects.toThrow('unavailable');
  });

  it('retries a batch refused as invalid record by record, so one bad record fails alone', async () => {
    const { calls, transport, ack } = heldTransport();
    const audit = createAuditPipeline(transport, { maxInFlight: 1 });
    const lone = audit.append(record('a'));
    const batch = ['good', 'bad'].map((id) => audit.append(record(id)));
    ack(0);
    await lone;
    await tick();
    calls[1]!.reject(Object.assign(new Error('record.actor is missing'), { code: 3 }));
    await tick();
    expect(calls.slice(2).map((c) => [c.kind, c.records[0]!.id])).toEqual([
      ['append', 'good'],
      ['append', 'bad'],
    ]);
    ack(2);
    calls[3]!.reject(Object.assign(new Error('record.actor is missing'), { code: 3 }));
    await expect(batch[0]).resolves.toMatchObject({ id: 'good' });
    await expect(batch[1]).rejects.toThrow('record.actor is missing');
  });

  it('refuses receipts that do not match the records sent', async () => {
    const { calls, transport, receiptsFor, ack } = heldTransport();
    const audit = createAuditPipeline(transport, { maxInFlight: 1 });
    const lone = audit.append(record('a'));
    calls[0]!.resolve(receiptsFor([record('someone-else')]));
    await expect(lone).rejects.toThrow('another record');
    const b = audit.append(record('b'));
    const rest = ['c', 'd'].map((id) => audit.append(record(id)));
    ack(1);
    await expect(b).resolves.toMatchObject({ id: 'b' });
    await tick();
    expect(calls[2]!.records.map((r) => r.id)).toEqual(['c', 'd']);
    // One receipt for two records.
    calls[2]!.resolve(receiptsFor([record('c')]));
    for (const p of rest) await expect(p).rejects.toThrow('1 receipts for 2 records');
  });
});
