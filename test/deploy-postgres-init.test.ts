import { spawnSync } from 'node:child_process';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { openPostgresIdentityStore } from '../identity/index.ts';
import { startPostgres, type PostgresInstance } from './support/postgres.ts';

/*
 * deploy/postgres/init-identity.sh, as the PostgreSQL image runs it on a fresh data volume:
 * a role and database of the broker's own, with the password from the broker's URL secret.
 */

const SCRIPT = path.resolve(import.meta.dirname, '../deploy/postgres/init-identity.sh');
const PASSWORD = 'c0ffee-tea.and~cake_2b';

let server: PostgresInstance;
let dir: string;
beforeAll(async () => {
  server = await startPostgres({ database: 'audit' });
}, 60_000);
afterAll(async () => {
  await server?.stop();
});
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'bulwark-pg-init-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function runInit(url: string) {
  const file = path.join(dir, 'identity-postgres-url');
  writeFileSync(file, `${url}\n`, { mode: 0o600 });
  return spawnSync('sh', [SCRIPT], {
    encoding: 'utf8',
    timeout: 30_000,
    env: {
      PATH: process.env.PATH,
      PGHOST: '127.0.0.1',
      PGPORT: String(server.port),
      POSTGRES_USER: 'postgres',
      POSTGRES_DB: 'audit',
      IDENTITY_POSTGRES_URL_FILE: file,
    },
  });
}

/** RFC 5802/7677: does a PostgreSQL SCRAM-SHA-256 verifier belong to this password? */
function scramMatches(verifier: string, password: string): boolean {
  const [, params = '', keys = ''] = verifier.split('$');
  const [iterations = '0', salt = ''] = params.split(':');
  const [storedKey = ''] = keys.split(':');
  const salted = pbkdf2Sync(
    password,
    Buffer.from(salt, 'base64'),
    Number(iterations),
    32,
    'sha256',
  );
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return createHash('sha256').update(clientKey).digest('base64') === storedKey;
}

async function query<T extends pg.QueryResultRow>(sql: string, database = 'postgres') {
  const client = new pg.Client({
    connectionString: server.url.replace(/\/[^/]*$/, `/${database}`),
  });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('deploy/postgres/init-identity.sh', () => {
  it('refuses a URL it cannot take the password from, and says so without echoing it', async () => {
    for (const url of [
      'postgres://identity@postgres:5432/identity', // no password
      'postgres://identity:short@postgres:5432/identity', // too short to be random
      `postgres://audit:${PASSWORD}@postgres:5432/identity`, // another role
      `postgres://identity:${PASSWORD}@postgres:5432/audit`, // another database
      `postgres://identity:${PASSWORD}';DROP ROLE postgres;--@postgres:5432/identity`,
    ]) {
      const result = runInit(url);
      expect({ url, status: result.status }).toEqual({ url, status: 1 });
      expect(result.stderr).toContain('must hold postgres://identity:<password>@');
      expect(result.stderr + result.stdout).not.toContain(PASSWORD);
    }
    expect(await query("SELECT 1 FROM pg_roles WHERE rolname = 'identity'")).toEqual([]);
  });

  it("creates the broker's own role and database, with the URL's password", async () => {
    const url = `postgres://identity:${PASSWORD}@postgres:5432/identity`;
    const result = runInit(url);
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
    expect(result.stdout + result.stderr).not.toContain(PASSWORD);

    const [db] = await query<{ owner: string }>(
      "SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = 'identity'",
    );
    expect(db).toEqual({ owner: 'identity' });
    const [role] = await query<{ rolsuper: boolean; rolcreaterole: boolean; hash: string }>(
      "SELECT rolsuper, rolcreaterole, rolpassword AS hash FROM pg_authid WHERE rolname = 'identity'",
    );
    expect(role).toMatchObject({ rolsuper: false, rolcreaterole: false });
    // Stored as a SCRAM verifier of exactly that password (never as text).
    expect(role!.hash).toMatch(/^SCRAM-SHA-256\$/);
    expect(scramMatches(role!.hash, PASSWORD)).toBe(true);
    expect(scramMatches(role!.hash, `${PASSWORD}x`)).toBe(false);

    // The broker's store creates its tables as that role, in that database.
    const store = await openPostgresIdentityStore({
      connectionString: `postgres://identity@127.0.0.1:${server.port}/identity`,
    });
    await store.close();
    const tables = await query<{ owner: string }>(
      "SELECT DISTINCT tableowner AS owner FROM pg_tables WHERE tablename LIKE 'identity_%'",
      'identity',
    );
    expect(tables).toEqual([{ owner: 'identity' }]);

    // Run twice (a second init) it fails loudly rather than changing the password silently.
    expect(runInit(url).status).not.toBe(0);
  }, 30_000);
});
