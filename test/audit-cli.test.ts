/**
 * `bulwark audit verify|proof|tail|export` on a real SQLite log, offline: verification names
 * the first bad leaf and exits 3 on tampering, with the database or an export.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { AuditRecord, EventType, Outcome } from '../gen/bulwark/audit/v1/audit.ts';
import { main } from '../cli/main.ts';
import { openAuditLog } from '../services/audit/log.ts';
import { createNoteSigner, formatCheckpoint, signNote } from '../services/audit/note.ts';
import { openSqliteStore } from '../services/audit/store/sqlite-store.ts';

async function run(...args: string[]) {
  let out = '';
  let err = '';
  const code = await main(['node', 'bulwark', ...args], {
    out: (t) => (out += t),
    err: (t) => (err += t),
  });
  return { code, out, err };
}

const rec = (i: number) =>
  AuditRecord.fromPartial({
    id: `c-${i}`,
    eventType: EventType.EVENT_TYPE_MODEL_ADMIN,
    actor: { sub: 'acme/admin' },
    action: 'model.promote',
    outcome: Outcome.OUTCOME_SUCCESS,
  });

describe('bulwark audit', () => {
  let dir: string;
  let db: string;
  let vkey: string;
  let checkpointNote: string;
  const key = generateKeyPairSync('ed25519').privateKey;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'audit-cli-'));
    db = join(dir, 'audit.db');
    const log = await openAuditLog({
      store: openSqliteStore({ path: db }),
      signingKey: key,
      origin: 'bulwark.local/audit',
    });
    await log.appendMany(Array.from({ length: 30 }, (_, i) => rec(i)));
    checkpointNote = (await log.checkpoint()).note;
    vkey = log.verifierKey;
    await log.close();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const tamper = (sql: string, ...args: Array<string | number | Buffer>) => {
    const raw = new DatabaseSync(db);
    raw.prepare(sql).run(...args);
    raw.close();
  };

  it('verify succeeds on an intact log, with the pinned key and a trusted checkpoint file', async () => {
    const cpFile = join(dir, 'cp.txt');
    writeFileSync(cpFile, checkpointNote);
    const keyFile = join(dir, 'log.vkey');
    writeFileSync(keyFile, `${vkey}\n`);
    const r = await run(
      'audit',
      'verify',
      '--sqlite',
      db,
      '--key',
      keyFile,
      '--checkpoint',
      cpFile,
    );
    expect(r).toMatchObject({ code: 0 });
    expect(r.out).toMatch(/^ok: 30 leaves verified/);
    const unpinned = await run('audit', 'verify', '--sqlite', db);
    expect(unpinned.code).toBe(0);
    expect(unpinned.err).toMatch(/pass --key to pin it/);
  });

  it('verify names the first bad leaf and exits 3 when a row was edited', async () => {
    tamper('UPDATE leaves SET data = ? WHERE idx = 7', Buffer.from('{"id":"forged"}'));
    const r = await run('audit', 'verify', '--sqlite', db);
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/leaf 7 does not match its stored hash \(first bad leaf: 7\)/);
    // The same verdict with a worker thread hashing, and on this thread alone.
    for (const workers of ['1', '0']) {
      const w = await run('audit', 'verify', '--sqlite', db, '--workers', workers);
      expect(w.code).toBe(3);
      expect(w.err).toMatch(/leaf 7 does not match its stored hash \(first bad leaf: 7\)/);
    }
    expect((await run('audit', 'verify', '--sqlite', db, '--workers', 'two')).code).toBe(2);
  });

  it('verify exits 3 for a checkpoint signed by another key or one the log does not extend', async () => {
    const other = createNoteSigner(
      'bulwark.local/audit',
      generateKeyPairSync('ed25519').privateKey,
    );
    const forged = join(dir, 'forged.txt');
    writeFileSync(
      forged,
      signNote(
        formatCheckpoint({ origin: 'bulwark.local/audit', size: 30, root: Buffer.alloc(32) }),
        [other],
      ),
    );
    expect(
      (await run('audit', 'verify', '--sqlite', db, '--key', vkey, '--checkpoint', forged)).code,
    ).toBe(3);
    const signer = createNoteSigner('bulwark.local/audit', key);
    const wrongRoot = join(dir, 'wrong.txt');
    writeFileSync(
      wrongRoot,
      signNote(
        formatCheckpoint({ origin: 'bulwark.local/audit', size: 20, root: Buffer.alloc(32) }),
        [signer],
      ),
    );
    const r = await run(
      'audit',
      'verify',
      '--sqlite',
      db,
      '--key',
      vkey,
      '--checkpoint',
      wrongRoot,
    );
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/checkpoint of size 20 \(first bad leaf: 0\)/);
  });

  it('export writes JSON Lines that verify offline, and an edited export names the leaf', async () => {
    const file = join(dir, 'audit.jsonl');
    const r = await run('audit', 'export', '--sqlite', db, '--out', file);
    expect(r.code).toBe(0);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(31);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      type: 'checkpoint',
      origin: 'bulwark.local/audit',
      verifierKey: vkey,
    });
    expect(JSON.parse(lines[5]!)).toMatchObject({
      type: 'leaf',
      index: 4,
      record: { id: 'c-4', eventType: 'model-admin' },
    });
    expect((await run('audit', 'verify', '--export', file, '--key', vkey)).code).toBe(0);
    lines[12] = lines[12]!.replace('"model.promote"', '"model.delete"');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const bad = await run('audit', 'verify', '--export', file, '--key', vkey);
    expect(bad.code).toBe(3);
    expect(bad.err).toMatch(/first bad leaf: 11/);
    // Dropping a line is noticed too.
    lines.splice(3, 1);
    writeFileSync(file, `${lines.join('\n')}\n`);
    expect((await run('audit', 'verify', '--export', file, '--key', vkey)).err).toMatch(
      /leaf 2 is missing/,
    );
  });

  it('proof prints a proof that verifies against the latest checkpoint', async () => {
    const r = await run('audit', 'proof', '12', '--sqlite', db, '--key', vkey);
    expect(r.code).toBe(0);
    const proof = JSON.parse(r.out) as {
      verified: boolean;
      treeSize: number;
      hashes: string[];
      record: { id: string };
    };
    expect(proof).toMatchObject({ verified: true, treeSize: 30, record: { id: 'c-12' } });
    expect(proof.hashes.length).toBe(5);
    expect((await run('audit', 'proof', '99', '--sqlite', db)).code).toBe(1);
    expect((await run('audit', 'proof', 'abc', '--sqlite', db)).code).toBe(2);
  });

  it('tail prints the newest records and follows new ones', async () => {
    const r = await run('audit', 'tail', '--sqlite', db, '-n', '3');
    expect(
      r.out
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { index: number }).index),
    ).toEqual([27, 28, 29]);
    const following = run(
      'audit',
      'tail',
      '--sqlite',
      db,
      '-n',
      '0',
      '--follow',
      '--interval',
      '20',
      '--stop-after',
      '2',
    );
    const log = await openAuditLog({
      store: openSqliteStore({ path: db }),
      signingKey: key,
      origin: 'bulwark.local/audit',
    });
    await log.append(rec(30));
    await log.append(rec(31));
    const f = await following;
    await log.close();
    expect(
      f.out
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { index: number }).index),
    ).toEqual([30, 31]);
  });

  it('exits 4 when the database is missing, and every command has help', async () => {
    expect((await run('audit', 'verify', '--sqlite', join(dir, 'nope.db'))).code).toBe(4);
    for (const cmd of ['verify', 'proof', 'tail', 'export']) {
      const h = await run('audit', cmd, '--help');
      expect(h.code).toBe(0);
      expect(h.out).toMatch(/--sqlite/);
    }
  });
});
