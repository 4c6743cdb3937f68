import { DatabaseSync } from 'node:sqlite';
import type { Adapter, AdapterPayload } from 'oidc-provider';

/**
 * Persistent storage for `oidc-provider` models (sessions, grants, codes, tokens, device codes)
 * in SQLite through the built-in `node:sqlite`. One table holds every model; expired rows are
 * ignored on read and swept on write.
 */
export interface SqliteAdapterStore {
  /** The class to hand to `oidc-provider`'s `adapter` option. */
  readonly Adapter: new (name: string) => Adapter;
  /** Removes rows whose expiry has passed. */
  sweep(): void;
  /** Replaces the stored `Client` rows with these client metadata documents. */
  /**
   * Replaces the `Client` rows, in one write transaction, leaving out the clients `isRevoked`
   * names (asked inside that transaction).
   */
  syncClients(clients: Record<string, unknown>[], isRevoked?: (clientId: string) => boolean): void;
  /** Deletes every grant, token and code of a client; returns the number of grants removed. */
  revokeClient(clientId: string): number;
  close(): void;
}

interface Row {
  payload: string;
  expires_at: number | null;
}

/**
 * Opens (or creates) the store. `path` is a file path or `:memory:`.
 *
 * @example
 * ```ts
 * const store = openSqliteAdapterStore({ path: '/var/lib/bulwark/identity.db' });
 * // or share a database: openSqliteAdapterStore({ db })
 * new Provider(issuer, { adapter: store.Adapter });
 * ```
 */
export function openSqliteAdapterStore(options: {
  /** A file path or `:memory:`; or an open database to share (then `close` leaves it open). */
  path?: string;
  db?: DatabaseSync;
  now?: () => number;
}): SqliteAdapterStore {
  const shared = options.db !== undefined;
  const db = options.db ?? new DatabaseSync(options.path ?? ':memory:');
  const now = options.now ?? Date.now;
  db.exec(`
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = NORMAL;
    PRAGMA busy_timeout = 5000;
    CREATE TABLE IF NOT EXISTS oidc_models (
      model TEXT NOT NULL,
      id TEXT NOT NULL,
      payload TEXT NOT NULL,
      grant_id TEXT,
      user_code TEXT,
      uid TEXT,
      expires_at INTEGER,
      PRIMARY KEY (model, id)
    );
    CREATE INDEX IF NOT EXISTS oidc_models_grant ON oidc_models (grant_id);
    CREATE INDEX IF NOT EXISTS oidc_models_user_code ON oidc_models (model, user_code);
    CREATE INDEX IF NOT EXISTS oidc_models_uid ON oidc_models (model, uid);
    -- Client assertion ids (private_key_jwt replay detection): one row per token request, so
    -- they get a narrow table with no secondary index to update on every write.
    CREATE TABLE IF NOT EXISTS oidc_replay (
      id TEXT PRIMARY KEY,
      payload TEXT NOT NULL,
      expires_at INTEGER
    ) WITHOUT ROWID;
  `);
  const upsert = db.prepare(`
    INSERT INTO oidc_models (model, id, payload, grant_id, user_code, uid, expires_at)
    VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (model, id) DO UPDATE SET payload = excluded.payload,
      grant_id = excluded.grant_id, user_code = excluded.user_code, uid = excluded.uid,
      expires_at = excluded.expires_at`);
  const byId = db.prepare('SELECT payload, expires_at FROM oidc_models WHERE model = ? AND id = ?');
  const byUserCode = db.prepare(
    'SELECT payload, expires_at FROM oidc_models WHERE model = ? AND user_code = ?',
  );
  const byUid = db.prepare(
    'SELECT payload, expires_at FROM oidc_models WHERE model = ? AND uid = ?',
  );
  const destroy = db.prepare('DELETE FROM oidc_models WHERE model = ? AND id = ?');
  const revokeGrant = db.prepare('DELETE FROM oidc_models WHERE grant_id = ?');
  const sweep = db.prepare(
    'DELETE FROM oidc_models WHERE expires_at IS NOT NULL AND expires_at < ?',
  );
  const replayUpsert = db.prepare(`
    INSERT INTO oidc_replay (id, payload, expires_at) VALUES (?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET payload = excluded.payload, expires_at = excluded.expires_at`);
  const replayById = db.prepare('SELECT payload, expires_at FROM oidc_replay WHERE id = ?');
  const replayDestroy = db.prepare('DELETE FROM oidc_replay WHERE id = ?');
  const replaySweep = db.prepare(
    'DELETE FROM oidc_replay WHERE expires_at IS NOT NULL AND expires_at < ?',
  );
  const REPLAY = 'ReplayDetection';

  const read = (row: unknown): AdapterPayload | undefined => {
    const r = row as Row | undefined;
    if (!r) return undefined;
    if (r.expires_at !== null && r.expires_at <= now()) return undefined;
    return JSON.parse(r.payload) as AdapterPayload;
  };

  class SqliteAdapter implements Adapter {
    readonly name: string;
    constructor(name: string) {
      this.name = name;
    }
    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const expiresAt = expiresIn ? now() + expiresIn * 1000 : null;
      if (this.name === REPLAY) {
        replayUpsert.run(id, JSON.stringify(payload), expiresAt);
        return;
      }
      upsert.run(
        this.name,
        id,
        JSON.stringify(payload),
        payload.grantId ?? null,
        payload.userCode ?? null,
        payload.uid ?? null,
        expiresAt,
      );
    }
    async find(id: string): Promise<AdapterPayload | undefined> {
      return read(this.name === REPLAY ? replayById.get(id) : byId.get(this.name, id));
    }
    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return read(byUserCode.get(this.name, userCode));
    }
    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return read(byUid.get(this.name, uid));
    }
    async consume(id: string): Promise<void> {
      const current = await this.find(id);
      if (!current) return;
      const row = byId.get(this.name, id) as unknown as Row;
      const expiresIn = row.expires_at === null ? 0 : Math.max(1, (row.expires_at - now()) / 1000);
      await this.upsert(id, { ...current, consumed: Math.floor(now() / 1000) }, expiresIn);
    }
    async destroy(id: string): Promise<void> {
      if (this.name === REPLAY) replayDestroy.run(id);
      else destroy.run(this.name, id);
    }
    async revokeByGrantId(grantId: string): Promise<void> {
      revokeGrant.run(grantId);
    }
  }

  return {
    Adapter: SqliteAdapter,
    sweep: () => {
      sweep.run(now());
      replaySweep.run(now());
    },
    syncClients(clients, isRevoked = () => false) {
      db.exec('BEGIN IMMEDIATE');
      try {
        db.prepare("DELETE FROM oidc_models WHERE model = 'Client'").run();
        for (const c of clients) {
          const id = String(c.client_id);
          if (!isRevoked(id)) upsert.run('Client', id, JSON.stringify(c), null, null, null, null);
        }
        db.exec('COMMIT');
      } catch (err) {
        db.exec('ROLLBACK');
        throw err;
      }
    },
    revokeClient(clientId) {
      const grants = db
        .prepare(
          "SELECT id FROM oidc_models WHERE model = 'Grant' AND json_extract(payload, '$.clientId') = ?",
        )
        .all(clientId) as unknown as { id: string }[];
      for (const g of grants) revokeGrant.run(g.id);
      db.prepare("DELETE FROM oidc_models WHERE json_extract(payload, '$.clientId') = ?").run(
        clientId,
      );
      return grants.length;
    },
    close: () => {
      if (!shared) db.close();
    },
  };
}
