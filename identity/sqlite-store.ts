import { DatabaseSync } from 'node:sqlite';
import type { Account } from './account-store.ts';
import { openSqliteAdapterStore } from './sqlite-adapter.ts';
import { newCookieKey, type IdentityStore, type KeyRecord } from './store.ts';

interface KeyRow {
  kid: string;
  jwk: string;
  created_at: number;
  activates_at: number | null;
  retired_at: number | null;
  remove_after: number | null;
}

const toRecord = (r: KeyRow): KeyRecord => ({
  kid: r.kid,
  jwk: r.jwk,
  createdAt: r.created_at,
  activatesAt: r.activates_at ?? undefined,
  retiredAt: r.retired_at ?? undefined,
  removeAfter: r.remove_after ?? undefined,
});

/**
 * The broker's default store: one SQLite file (WAL) through the built-in `node:sqlite`.
 *
 * @example
 * ```ts
 * const store = openSqliteIdentityStore('/var/lib/bulwark/identity.db');
 * ```
 */
export function openSqliteIdentityStore(path: string): IdentityStore {
  const db = new DatabaseSync(path);
  const models = openSqliteAdapterStore({ db });
  db.exec(`
    CREATE TABLE IF NOT EXISTS accounts (account_id TEXT PRIMARY KEY, data TEXT NOT NULL, updated_at INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS revoked_clients (client_id TEXT PRIMARY KEY, revoked_at INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS signing_keys (
      kid TEXT PRIMARY KEY, jwk TEXT NOT NULL, created_at INTEGER NOT NULL,
      retired_at INTEGER, remove_after INTEGER, activates_at INTEGER);
    -- Cookie signing keys; the highest id is the newest (signs), the others still verify.
    CREATE TABLE IF NOT EXISTS cookie_keys (
      id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);
  `);
  migrate(db);
  // Prepared once: token exchange reads and writes an account on every call.
  const upsertAccount = db.prepare(
    `INSERT INTO accounts (account_id, data, updated_at) VALUES (?, ?, ?)
     ON CONFLICT (account_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at
     WHERE accounts.data IS NOT excluded.data`,
  );
  const findAccount = db.prepare('SELECT data FROM accounts WHERE account_id = ?');
  const listCookieKeys = () =>
    (
      db.prepare('SELECT key FROM cookie_keys ORDER BY id DESC').all() as unknown as {
        key: string;
      }[]
    ).map((r) => r.key);
  const tx = <T>(fn: () => T): T => {
    db.exec('BEGIN IMMEDIATE');
    try {
      const out = fn();
      db.exec('COMMIT');
      return out;
    } catch (err) {
      db.exec('ROLLBACK');
      throw err;
    }
  };
  return {
    Adapter: models.Adapter,
    syncClients: async (clients) => {
      const revoked = db.prepare('SELECT 1 FROM revoked_clients WHERE client_id = ?');
      models.syncClients(clients, (clientId) => revoked.get(clientId) !== undefined);
    },
    revokeClientArtefacts: async (clientId) => models.revokeClient(clientId),
    revokedClients: async () =>
      (
        db.prepare('SELECT client_id FROM revoked_clients').all() as unknown as {
          client_id: string;
        }[]
      ).map((r) => r.client_id),
    addRevokedClient: async (clientId, at) =>
      void db
        .prepare('INSERT OR IGNORE INTO revoked_clients (client_id, revoked_at) VALUES (?, ?)')
        .run(clientId, at),
    // An unchanged account is not rewritten: a read is cheap, a write takes the write lock and
    // a WAL frame (token exchange upserts the subject's account on every call).
    upsertAccount: async (account, at) => {
      const data = JSON.stringify(account);
      const row = findAccount.get(account.accountId) as { data: string } | undefined;
      if (row?.data === data) return;
      upsertAccount.run(account.accountId, data, at);
    },
    findAccount: async (accountId) => {
      const row = findAccount.get(accountId) as { data: string } | undefined;
      return row ? (JSON.parse(row.data) as Account) : undefined;
    },
    listKeys: async () =>
      (
        db
          .prepare(
            'SELECT * FROM signing_keys ORDER BY COALESCE(activates_at, created_at) DESC, kid',
          )
          .all() as unknown as KeyRow[]
      ).map(toRecord),
    rotateKeys: async (fresh, expectedActiveKid, retire) =>
      tx(() => {
        const current = db
          .prepare('SELECT kid FROM signing_keys WHERE retired_at IS NULL')
          .get() as { kid: string } | undefined;
        if (current?.kid !== expectedActiveKid) return false;
        db.prepare('DELETE FROM signing_keys WHERE COALESCE(activates_at, created_at) > ?').run(
          retire.at,
        );
        db.prepare(
          `UPDATE signing_keys SET retired_at = ?, remove_after = ?
           WHERE retired_at IS NULL OR retired_at > ?`,
        ).run(retire.at, retire.removeAfter, retire.at);
        db.prepare(
          'INSERT INTO signing_keys (kid, jwk, created_at, activates_at) VALUES (?, ?, ?, ?)',
        ).run(fresh.kid, fresh.jwk, fresh.createdAt, fresh.activatesAt ?? fresh.createdAt);
        return true;
      }),
    deleteKeys: async (kids) => {
      for (const kid of kids) db.prepare('DELETE FROM signing_keys WHERE kid = ?').run(kid);
    },
    cookieKeys: async () => {
      const keys = listCookieKeys();
      if (keys.length) return keys;
      // BEGIN IMMEDIATE takes the write lock before the second look: another process opening
      // the same file at the same moment either created the key already or waits for us.
      return tx(() => {
        const again = listCookieKeys();
        if (again.length) return again;
        const key = newCookieKey();
        db.prepare('INSERT INTO cookie_keys (key, created_at) VALUES (?, ?)').run(key, Date.now());
        return [key];
      });
    },
    sweep: async () => models.sweep(),
    close: async () => db.close(),
  };
}

/**
 * Brings a file written by an earlier version up to date. `activates_at` came with scheduled
 * rotation; a key without it has signed since its creation. Checked and altered under the
 * write lock: two processes opening the same old file must not both add the column.
 */
function migrate(db: DatabaseSync): void {
  const hasColumn = () =>
    (db.prepare('PRAGMA table_info(signing_keys)').all() as unknown as { name: string }[]).some(
      (c) => c.name === 'activates_at',
    );
  if (hasColumn()) return;
  db.exec('BEGIN IMMEDIATE');
  try {
    if (!hasColumn()) db.exec('ALTER TABLE signing_keys ADD COLUMN activates_at INTEGER');
    db.exec('COMMIT');
  } catch (err) {
    db.exec('ROLLBACK');
    throw err;
  }
}
