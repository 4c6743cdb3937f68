/**
 * The audit service over real mTLS: appends, batches, checkpoints and proofs a client can
 * verify, queries for readers only, Envoy access-log ingestion, and refusals tried from the
 * attacker's side.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata, status, type Client, type ServiceError } from '@grpc/grpc-js';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import {
  AuditRecord,
  EventType,
  Outcome,
  type AppendBatchResponse,
  type AppendResponse,
  type GetCheckpointResponse,
  type GetConsistencyProofResponse,
  type GetInclusionProofResponse,
  type QueryResponse,
  type VerifyResponse,
} from '../gen/bulwark/audit/v1/audit.ts';
import { createMeshCredentials } from '../mesh/kit/index.ts';
import { createTestPki } from '../mesh/ca/testing.ts';
import { loadAccessLogService } from '../services/audit/access-log.ts';
import { hashLeaf, verifyConsistency, verifyInclusion } from '../services/audit/merkle.ts';
import { openCheckpoint, parseVerifierKey } from '../services/audit/note.ts';
import { openSqliteStore } from '../services/audit/store/sqlite-store.ts';
import {
  call,
  quietLogger,
  startAuditHarness,
  type AuditHarness,
} from './support/audit-service.ts';

const id = (n: string) => `spiffe://bulwark.local/svc/${n}`;

function record(i: number, overrides: Partial<AuditRecord> = {}): AuditRecord {
  return AuditRecord.fromPartial({
    service: 'inference',
    eventType: EventType.EVENT_TYPE_INFERENCE,
    actor: { sub: `acme/user${i % 2}`, org: 'acme' },
    action: 'infer',
    target: { modelName: i % 3 ? 'iris' : 'credit' },
    outcome: Outcome.OUTCOME_SUCCESS,
    traceId: i === 5 ? 'ab'.repeat(16) : '',
    ...overrides,
  });
}

describe('audit service over mTLS', () => {
  let h: AuditHarness;
  let dir: string;
  const registry = new Registry();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'audit-svc-'));
    h = await startAuditHarness({
      store: openSqliteStore({ path: join(dir, 'audit.db') }),
      signingKey: generateKeyPairSync('ed25519').privateKey,
      appenders: [id('inference'), id('policy'), id('gateway')],
      readers: [id('auditor')],
      limits: { maxFieldLength: 1024, maxAttributes: 32, maxRecordBytes: 4096 },
      registry,
    });
  });
  afterAll(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('appends, acknowledges with index and size, and proves inclusion against a signed checkpoint', async () => {
    const inference = h.client('inference');
    const res = await call<unknown, AppendResponse>(inference, 'append', { record: record(0) });
    expect(res.receipt).toMatchObject({
      leafIndex: 0,
      treeSize: 1,
      logOrigin: 'bulwark.local/audit',
    });
    const cp = await call<unknown, GetCheckpointResponse>(inference, 'getCheckpoint', {});
    const verifier = parseVerifierKey(cp.verifierKey);
    const body = openCheckpoint(cp.checkpoint, verifier, 'bulwark.local/audit');
    expect(body.size).toBe(1);
    const proof = await call<unknown, GetInclusionProofResponse>(inference, 'getInclusionProof', {
      leafIndex: 0,
      treeSize: 0,
    });
    // Not a reader: the proof comes without the record.
    expect(proof.leafData.length).toBe(0);
    expect(verifyInclusion(res.receipt!.leafHash, 0, proof.treeSize, proof.hashes, body.root)).toBe(
      true,
    );
  });

  it('exports its commit metrics', async () => {
    await call(h.client('inference'), 'append', { record: record(42) });
    const text = await registry.metrics();
    const size = /bulwark_audit_tree_size (\d+)/.exec(text);
    expect(Number(size?.[1])).toBe(h.audit.log.size());
    expect(text).toMatch(/bulwark_audit_commit_records_count [1-9]/);
    expect(text).toMatch(/bulwark_audit_commit_failures_total 0/);
  });

  it('AppendBatch streams records and answers one receipt per record, in order', async () => {
    const policy = h.client('policy');
    const res = await new Promise<AppendBatchResponse>((resolve, reject) => {
      const stream = policy.appendBatch((err, r) => (err ? reject(err) : resolve(r)));
      for (let i = 1; i <= 20; i++) stream.write({ record: record(i, { service: 'policy' }) });
      stream.end();
    });
    const indexes = res.receipts.map((r) => r.leafIndex);
    expect(indexes).toEqual(Array.from({ length: 20 }, (_, k) => indexes[0]! + k));
    expect(res.receipts.every((r) => r.treeSize > r.leafIndex)).toBe(true);
  });

  it('lets readers query with filters and pages, and verify; proofs carry the record for them', async () => {
    const auditor = h.client('auditor');
    const all = await call<unknown, QueryResponse>(auditor, 'query', {
      actorSub: 'acme/user1',
      pageSize: 4,
    });
    expect(all.entries).toHaveLength(4);
    expect(all.entries.every((e) => e.record?.actor?.sub === 'acme/user1')).toBe(true);
    expect(all.entries[0]?.record?.submittedBy).toMatch(
      /^spiffe:\/\/bulwark.local\/svc\/(inference|policy)$/,
    );
    const next = await call<unknown, QueryResponse>(auditor, 'query', {
      actorSub: 'acme/user1',
      pageSize: 4,
      pageToken: all.nextPageToken,
    });
    expect(next.entries[0]!.leafIndex).toBeGreaterThan(all.entries[3]!.leafIndex);
    const traced = await call<unknown, QueryResponse>(auditor, 'query', {
      traceId: 'ab'.repeat(16),
    });
    expect(traced.entries.map((e) => e.record?.traceId)).toEqual(['ab'.repeat(16)]);
    const credit = await call<unknown, QueryResponse>(auditor, 'query', {
      modelName: 'credit',
      eventType: EventType.EVENT_TYPE_INFERENCE,
      outcome: Outcome.OUTCOME_SUCCESS,
    });
    expect(credit.entries.length).toBeGreaterThan(0);
    expect(credit.entries.every((e) => e.record?.target?.modelName === 'credit')).toBe(true);
    const inRange = await call<unknown, QueryResponse>(auditor, 'query', {
      startTime: new Date(Date.now() - 60_000),
      endTime: new Date(Date.now() + 60_000),
    });
    expect(inRange.entries.length).toBeGreaterThan(0);
    const proof = await call<unknown, GetInclusionProofResponse>(auditor, 'getInclusionProof', {
      leafIndex: 3,
      treeSize: 0,
    });
    expect(Buffer.from(hashLeaf(proof.leafData)).length).toBe(32);
    const verify = await call<unknown, VerifyResponse>(auditor, 'verify', {});
    expect(verify).toMatchObject({ ok: true });
    expect(verify.treeSize).toBeGreaterThanOrEqual(21);
  });

  it('proves consistency between two checkpoints', async () => {
    const c = h.client('inference');
    const a = await call<unknown, GetCheckpointResponse>(c, 'getCheckpoint', {});
    await call(c, 'append', { record: record(99) });
    const b = await call<unknown, GetCheckpointResponse>(c, 'getCheckpoint', {});
    expect(b.treeSize).toBe(a.treeSize + 1);
    const p = await call<unknown, GetConsistencyProofResponse>(c, 'getConsistencyProof', {
      firstSize: a.treeSize,
      secondSize: b.treeSize,
    });
    expect(verifyConsistency(a.treeSize, b.treeSize, a.rootHash, b.rootHash, p.hashes)).toBe(true);
  });

  const expectStatus = async (p: Promise<unknown>, code: status, details?: RegExp) => {
    const err = (await p.then(
      () => undefined,
      (e: unknown) => e,
    )) as ServiceError | undefined;
    expect(err?.code).toBe(code);
    if (details) expect(err?.details).toMatch(details);
  };

  it('refuses malformed records with INVALID_ARGUMENT naming the field', async () => {
    const c = h.client('inference');
    await expectStatus(
      call(c, 'append', { record: record(1, { eventType: 77 as EventType }) }),
      status.INVALID_ARGUMENT,
      /record\.event_type/,
    );
    await expectStatus(
      call(c, 'append', { record: record(1, { actor: undefined }) }),
      status.INVALID_ARGUMENT,
      /record\.actor/,
    );
    await expectStatus(
      call(c, 'append', { record: record(1, { outcome: Outcome.OUTCOME_UNSPECIFIED }) }),
      status.INVALID_ARGUMENT,
      /record\.outcome/,
    );
    await expectStatus(
      call(c, 'append', { record: record(1, { action: 'a\u0001b' }) }),
      status.INVALID_ARGUMENT,
      /record\.action contains control/,
    );
    await expectStatus(
      call(c, 'append', { record: record(1, { reason: 'r'.repeat(2000) }) }),
      status.INVALID_ARGUMENT,
      /record\.reason is longer/,
    );
    await expectStatus(
      call(c, 'append', {
        record: record(1, {
          attributes: {
            a: 'v'.repeat(1000),
            b: 'v'.repeat(1000),
            c: 'v'.repeat(1000),
            d: 'v'.repeat(1000),
            e: 'v'.repeat(1000),
          },
        }),
      }),
      status.INVALID_ARGUMENT,
      /larger than 4096 bytes/,
    );
    await expectStatus(call(c, 'append', {}), status.INVALID_ARGUMENT, /record is required/);
  });

  it('survives fuzzed appends: each is accepted or refused with INVALID_ARGUMENT, and service keeps serving', async () => {
    const c = h.client('inference');
    const text = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.constant(''),
      fc.string({ minLength: 1100, maxLength: 1200 }),
    );
    const arb = fc.record({
      id: text,
      service: text,
      eventType: fc.integer({ min: -2, max: 9 }),
      outcome: fc.integer({ min: -1, max: 5 }),
      actor: fc.option(
        fc.record({
          sub: text,
          org: text,
          clientId: text,
          peerSpiffeId: text,
          sourceAddress: text,
        }),
        { nil: undefined },
      ),
      action: text,
      traceId: text,
      spanId: text,
      inputDigest: text,
      latencyUs: fc.integer({ min: 0, max: 2 ** 40 }),
      attributes: fc.dictionary(text, text, { maxKeys: 40 }),
    });
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(arb, async (fields) => {
        const outcome = await call<unknown, AppendResponse>(c, 'append', {
          record: AuditRecord.fromPartial(fields as Partial<AuditRecord>),
        }).then(
          () => 'ok',
          (e: ServiceError) => e,
        );
        if (typeof outcome === 'string') accepted++;
        else {
          expect(outcome.code).toBe(status.INVALID_ARGUMENT);
          expect(outcome.details).toMatch(/^record/);
        }
      }),
      { numRuns: 150 },
    );
    const res = await call<unknown, AppendResponse>(c, 'append', { record: record(1) });
    expect(res.receipt!.leafIndex).toBeGreaterThan(0);
    expect(accepted).toBeGreaterThanOrEqual(0);
  });

  it('refuses reads from peers without audit:read, and appends from peers not allowed to append', async () => {
    const inference = h.client('inference');
    await expectStatus(call(inference, 'query', {}), status.PERMISSION_DENIED, /audit:read/);
    await expectStatus(call(inference, 'verify', {}), status.PERMISSION_DENIED);
    const auditor = h.client('auditor');
    await expectStatus(
      call(auditor, 'append', { record: record(1) }),
      status.PERMISSION_DENIED,
      /may not append/,
    );
    await expectStatus(
      new Promise((resolve, reject) => {
        const s = auditor.appendBatch((err, r) => (err ? reject(err) : resolve(r)));
        s.write({ record: record(1) });
        s.end();
      }),
      status.PERMISSION_DENIED,
    );
  });

  it('refuses peers not on the allow-list and certificates from another CA, for append and read', async () => {
    const rogue = h.client('rogue');
    await expectStatus(call(rogue, 'append', { record: record(1) }), status.UNAUTHENTICATED);
    await expectStatus(call(rogue, 'query', {}), status.UNAUTHENTICATED);
    const other = await createTestPki({ services: ['inference'] });
    try {
      const { AuditServiceClient } = await import('../gen/bulwark/audit/v1/audit.ts');
      const forged = new AuditServiceClient(
        h.address,
        createMeshCredentials({
          tls: {
            certPem: other.services.inference!.certPem,
            keyPem: other.services.inference!.keyPem,
            caPem: h.pki.caPem,
          },
          expectedServer: id('audit'),
          logger: quietLogger,
        }),
      );
      await expectStatus(call(forged, 'append', { record: record(1) }), status.UNAVAILABLE);
      forged.close();
      const plain = new AuditServiceClient(h.address, credentials.createInsecure());
      await expectStatus(call(plain, 'append', { record: record(1) }), status.UNAVAILABLE);
      plain.close();
    } finally {
      await other.cleanup();
    }
  });

  it('turns Envoy access-log entries from the gateway into access-log records, and refuses other streamers', async () => {
    const { client: AlsClient } = loadAccessLogService();
    const make = (name: string) =>
      new (
        AlsClient as unknown as new (
          a: string,
          c: ReturnType<typeof createMeshCredentials>,
        ) => Client & {
          streamAccessLogs(
            md: Metadata,
            cb: (e: ServiceError | null) => void,
          ): { write(m: unknown): void; end(): void };
        }
      )(
        h.address,
        createMeshCredentials({
          tls: h.pki.services[name]!,
          expectedServer: id('audit'),
          logger: quietLogger,
        }),
      );
    const send = (name: string, entries: unknown[]) =>
      new Promise<void>((resolve, reject) => {
        const c = make(name);
        const s = c.streamAccessLogs(new Metadata(), (err) => {
          c.close();
          if (err) reject(err);
          else resolve();
        });
        s.write({
          identifier: { node: { id: 'gw' }, logName: 'bulwark' },
          httpLogs: { logEntry: entries },
        });
        s.end();
      });
    const before = h.audit.log.size();
    await send('gateway', [
      {
        commonProperties: {
          downstreamRemoteAddress: { socketAddress: { address: '10.1.2.3', portValue: 5555 } },
          startTime: { seconds: '1767225600', nanos: 5_000_000 },
          timeToLastDownstreamTxByte: { seconds: '0', nanos: 2_500_000 },
        },
        request: {
          requestMethod: 'POST',
          path: '/inference.GRPCInferenceService/ModelInfer?token=secret',
          requestHeaders: { traceparent: `00-${'cd'.repeat(16)}-${'ef'.repeat(8)}-01` },
        },
        response: { responseCode: { value: 403 } },
      },
    ]);
    expect(h.audit.log.size()).toBe(before + 1);
    const got = await call<unknown, QueryResponse>(h.client('auditor'), 'query', {
      eventType: EventType.EVENT_TYPE_ACCESS_LOG,
    });
    const r = got.entries.at(-1)!.record!;
    expect(r).toMatchObject({
      service: 'gateway',
      action: 'POST /inference.GRPCInferenceService/ModelInfer',
      outcome: Outcome.OUTCOME_DENIED,
      traceId: 'cd'.repeat(16),
      latencyUs: 2500,
    });
    expect(r.actor).toMatchObject({ sub: 'anonymous', sourceAddress: '10.1.2.3' });
    expect(r.time?.toISOString()).toBe('2026-01-01T00:00:00.005Z');
    expect(JSON.stringify(got.entries.at(-1)!.leafData.toString())).not.toContain('secret');
    await expectStatus(send('inference', [{ request: { path: '/x' } }]), status.PERMISSION_DENIED);
    expect(h.audit.log.size()).toBe(before + 1);
  });
});
