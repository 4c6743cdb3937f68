/**
 * Storage failures behind a running audit service: a PostgreSQL database switched to
 * read-only and a SQLite database that is full. Appends fail with UNAVAILABLE and a log line
 * that says why, nothing half-written is acknowledged, and the service recovers.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { status, type ServiceError } from '@grpc/grpc-js';
import pg from 'pg';
import { pino } from 'pino';
import {
  AuditRecord,
  EventType,
  Outcome,
  type AppendResponse,
} from '../gen/bulwark/audit/v1/audit.ts';
import { openPostgresStore } from '../services/audit/store/postgres-store.ts';
import { openSqliteStore } from '../services/audit/store/sqlite-store.ts';
import { startPostgres, type PostgresInstance } from './support/postgres.ts';
import { call, startAuditHarness, type AuditHarness } from './support/audit-service.ts';

const rec = (i: number, reason = '') =>
  AuditRecord.fromPartial({
    id: `u-${i}`,
    eventType: EventType.EVENT_TYPE_AUTHZ,
    actor: { sub: 'acme/alice' },
    outcome: Outcome.OUTCOME_DENIED,
    reason,
  });

function capturingLogger() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

async function appendAll(h: AuditHarness, from: number, count: number, reason = '') {
  const client = h.client('inference');
  const results = await Promise.allSettled(
    Array.from({ length: count }, (_, k) =>
      call<unknown, AppendResponse>(client, 'append', { record: rec(from + k, reason) }),
    ),
  );
  return {
    acked: results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.receipt!] : [])),
    errors: results.flatMap((r) => (r.status === 'rejected' ? [r.reason as ServiceError] : [])),
  };
}

describe('audit storage unavailable', () => {
  let pgi: PostgresInstance;
  let dir: string;
  beforeAll(async () => {
    pgi = await startPostgres();
    dir = mkdtempSync(join(tmpdir(), 'audit-unavail-'));
  });
  afterAll(async () => {
    await pgi.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('PostgreSQL turned read-only: UNAVAILABLE, a clear log line, and recovery once writable', async () => {
    const { logger, lines } = capturingLogger();
    const h = await startAuditHarness({
      store: await openPostgresStore({ connectionString: pgi.url, schema: 'ro' }),
      signingKey: generateKeyPairSync('ed25519').privateKey,
      logger,
    });
    const admin = new pg.Client({ connectionString: pgi.url });
    await admin.connect();
    const kick = () =>
      admin.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
      );
    try {
      const first = await appendAll(h, 0, 10);
      expect(first.errors).toEqual([]);
      await admin.query('ALTER DATABASE bulwark SET default_transaction_read_only = on');
      await kick();
      const during = await appendAll(h, 100, 10);
      expect(during.acked).toEqual([]);
      expect(during.errors.map((e) => e.code)).toEqual(Array(10).fill(status.UNAVAILABLE));
      expect(during.errors[0]?.details).toMatch(/audit storage is unavailable/);
      expect(lines.some((l) => l.includes('audit append failed: storage unavailable'))).toBe(true);
      // Signing needs a write too: refused the same way, not as an internal error.
      await expect(h.audit.log.checkpoint()).rejects.toMatchObject({
        code: 'ERR_AUDIT_STORE_UNAVAILABLE',
      });
      await admin.query('ALTER DATABASE bulwark SET default_transaction_read_only = off');
      await kick();
      const after = await appendAll(h, 200, 10);
      expect(after.errors).toEqual([]);
      // Nothing from the failed window landed; indexes continue without a gap.
      expect(after.acked.map((r) => r.leafIndex).sort((a, b) => a - b)).toEqual([
        10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
      ]);
      const verified = await h.audit.log.verify();
      expect(verified).toMatchObject({ ok: true, treeSize: 20 });
    } finally {
      await admin.end();
      await h.close();
    }
  });

  it('SQLite full: UNAVAILABLE, and only acknowledged records are in the log', async () => {
    const path = join(dir, 'full.db');
    const h = await startAuditHarness({
      store: openSqliteStore({ path, maxPages: 60 }),
      signingKey: generateKeyPairSync('ed25519').privateKey,
    });
    let acked = 0;
    let errors: ServiceError[] = [];
    for (let round = 0; round < 40 && errors.length === 0; round++) {
      const r = await appendAll(h, round * 20, 20, 'x'.repeat(900));
      acked += r.acked.length;
      errors = r.errors;
    }
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.every((e) => e.code === status.UNAVAILABLE)).toBe(true);
    // Still serving: a checkpoint over what was acknowledged.
    expect(h.audit.log.size()).toBe(acked);
    await h.close();
    const store = openSqliteStore({ path, readOnly: true });
    expect(await store.size()).toBe(acked);
    await store.close();
  });
});
