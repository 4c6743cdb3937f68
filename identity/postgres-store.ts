import pg from 'pg';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { Account } from './account-store.ts';
import { newCookieKey, type IdentityStore, type KeyRecord } from './store.ts';

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS identity_oidc_models (
    model TEXT NOT NULL,
    id TEXT NOT NULL,
    payload JSONB NOT NULL,
    grant_id TEXT,
    user_code TEXT,
    uid TEXT,
    expires_at BIGINT,
    PRIMARY KEY (model, id)
  );
  CREATE INDEX IF NOT EXISTS identity_oidc_models_grant ON identity_oidc_models (grant_id);
  CREATE INDEX IF NOT EXISTS identity_oidc_models_user_code ON identity_oidc_models (model, user_code);
  CREATE INDEX IF NOT EXISTS identity_oidc_models_uid ON identity_oidc_models (model, uid);
  CREATE TABLE IF NOT EXISTS identity_accounts (
    account_id TEXT PRIMARY KEY, data JSONB NOT NULL, updated_at BIGINT NOT NULL);
  CREATE TABLE IF NOT EXISTS identity_revoked_clients (
    client_id TEXT PRIMARY KEY, revoked_at BIGINT NOT NULL);
  CREATE TABLE IF NOT EXISTS identity_signing_keys (
    kid TEXT PRIMARY KEY, jwk TEXT NOT NULL, created_at BIGINT NOT NULL,
    retired_at BIGINT, remove_after BIGINT);
  -- Scheduled rotation: when a key starts signing (NULL on rows written before it existed:
  -- since created_at). Looked up first: ALTER TABLE would take an exclusive lock on every start.
  DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'identity_signing_keys'
          AND column_name = 'activates_at') THEN
      ALTER TABLE identity_signing_keys ADD COLUMN activates_at BIGINT;
    END IF;
  END $$;
  -- At most one key not retired (the newest, active or published ahead of its activation),
  -- even when replicas race to create, rotate or schedule it.
  CREATE UNIQUE INDEX IF NOT EXISTS identity_signing_keys_one_active
    ON identity_signing_keys ((true)) WHERE retired_at IS NULL;
  -- Cookie signing keys; the highest id is the newest (signs), the others still verify.
  CREATE TABLE IF NOT EXISTS identity_cookie_keys (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, key TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL);
`;

interface ModelRow {
  payload: string;
  expires_at: string | null;
}

interface KeyRow {
  kid: string;
  jwk: string;
  created_at: string;
  activates_at: string | null;
  retired_at: string | null;
  remove_after: string | null;
}

const num = (v: string | null) => (v === null ? undefined : Number(v));

/**
 * The broker's store on PostgreSQL, for several broker replicas behind one issuer URL: they
 * share sessions, grants, codes, refresh tokens, accounts, revoked clients, signing keys and
 * cookie keys. Creates its tables on first use.
 *
 * @example
 * ```ts
 * const store = await openPostgresIdentityStore({ connectionString: 'postgres://bulwark@db/bulwark' });
 * const broker = await createBroker({ ...options, store });
 * // ... later
 * await broker.close();
 * await store.close();
 * ```
 */
export async function openPostgresIdentityStore(options: {
  connectionString?: string;
  pool?: pg.Pool;
  now?: () => number;
}): Promise<IdentityStore> {
  const pool = options.pool ?? new pg.Pool({ connectionString: options.connectionString, max: 10 });
  const now = options.now ?? Date.now;
  // An idle connection that drops (server restart) must not crash the process; the next
  // query on the pool gets a fresh connection or reports the outage itself.
  pool.on('error', () => undefined);
  async function tx<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const out = await fn(client);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }
  // Replicas starting together would race on CREATE TABLE IF NOT EXISTS: serialise them.
  await tx(async (c) => {
    await c.query("SELECT pg_advisory_xact_lock(hashtext('bulwark_identity_schema'))");
    await c.query(SCHEMA);
  });

  const read = (rows: ModelRow[]): AdapterPayload | undefined => {
    const row = rows[0];
    if (!row) return undefined;
    if (row.expires_at !== null && Number(row.expires_at) <= now()) return undefined;
    return JSON.parse(row.payload) as AdapterPayload;
  };
  const select = 'SELECT payload::text AS payload, expires_at FROM identity_oidc_models';
  const upsertSql = `INSERT INTO identity_oidc_models (model, id, payload, grant_id, user_code, uid, expires_at)
    VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7)
    ON CONFLICT (model, id) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id,
      user_code = excluded.user_code, uid = excluded.uid, expires_at = excluded.expires_at`;

  class PostgresAdapter implements Adapter {
    readonly name: string;
    constructor(name: string) {
      this.name = name;
    }
    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      await pool.query(upsertSql, [
        this.name,
        id,
        JSON.stringify(payload),
        payload.grantId ?? null,
        payload.userCode ?? null,
        payload.uid ?? null,
        expiresIn ? now() + expiresIn * 1000 : null,
      ]);
    }
    async find(id: string) {
      return read(
        (await pool.query<ModelRow>(`${select} WHERE model = $1 AND id = $2`, [this.name, id]))
          .rows,
      );
    }
    async findByUserCode(userCode: string) {
      return read(
        (
          await pool.query<ModelRow>(`${select} WHERE model = $1 AND user_code = $2`, [
            this.name,
            userCode,
          ])
        ).rows,
      );
    }
    async findByUid(uid: string) {
      return read(
        (await pool.query<ModelRow>(`${select} WHERE model = $1 AND uid = $2`, [this.name, uid]))
          .rows,
      );
    }
    async consume(id: string): Promise<void> {
      await pool.query(
        `UPDATE identity_oidc_models SET payload = jsonb_set(payload, '{consumed}', to_jsonb($3::bigint))
         WHERE model = $1 AND id = $2`,
        [this.name, id, Math.floor(now() / 1000)],
      );
    }
    async destroy(id: string): Promise<void> {
      await pool.query('DELETE FROM identity_oidc_models WHERE model = $1 AND id = $2', [
        this.name,
        id,
      ]);
    }
    async revokeByGrantId(grantId: string): Promise<void> {
      await pool.query('DELETE FROM identity_oidc_models WHERE grant_id = $1', [grantId]);
    }
  }

  return {
    Adapter: PostgresAdapter,
    syncClients: (clients) =>
      tx(async (c) => {
        await c.query("DELETE FROM identity_oidc_models WHERE model = 'Client'");
        // Read after the DELETE, which waits for a concurrent sync to commit: a client revoked
        // by another replica (its revocation committed before its own sync) stays out.
        const revoked = new Set(
          (
            await c.query<{ client_id: string }>('SELECT client_id FROM identity_revoked_clients')
          ).rows.map((r) => r.client_id),
        );
        for (const client of clients) {
          if (revoked.has(String(client.client_id))) continue;
          await c.query(upsertSql, [
            'Client',
            String(client.client_id),
            JSON.stringify(client),
            null,
            null,
            null,
            null,
          ]);
        }
      }),
    revokeClientArtefacts: (clientId) =>
      tx(async (c) => {
        const grants = await c.query<{ id: string }>(
          "SELECT id FROM identity_oidc_models WHERE model = 'Grant' AND payload->>'clientId' = $1",
          [clientId],
        );
        const ids = grants.rows.map((r) => r.id);
        if (ids.length)
          await c.query('DELETE FROM identity_oidc_models WHERE grant_id = ANY($1)', [ids]);
        await c.query("DELETE FROM identity_oidc_models WHERE payload->>'clientId' = $1", [
          clientId,
        ]);
        return ids.length;
      }),
    revokedClients: async () =>
      (
        await pool.query<{ client_id: string }>('SELECT client_id FROM identity_revoked_clients')
      ).rows.map((r) => r.client_id),
    addRevokedClient: async (clientId, at) => {
      await pool.query(
        'INSERT INTO identity_revoked_clients (client_id, revoked_at) VALUES ($1, $2) ON CONFLICT DO NOTHING',
        [clientId, at],
      );
    },
    upsertAccount: async (account, at) => {
      await pool.query(
        `INSERT INTO identity_accounts (account_id, data, updated_at) VALUES ($1, $2::jsonb, $3)
         ON CONFLICT (account_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at
         WHERE identity_accounts.data IS DISTINCT FROM excluded.data`,
        [account.accountId, JSON.stringify(account), at],
      );
    },
    findAccount: async (accountId) => {
      const { rows } = await pool.query<{ data: string }>(
        'SELECT data::text AS data FROM identity_accounts WHERE account_id = $1',
        [accountId],
      );
      return rows[0] ? (JSON.parse(rows[0].data) as Account) : undefined;
    },
    listKeys: async () =>
      (
        await pool.query<KeyRow>(
          'SELECT * FROM identity_signing_keys ORDER BY COALESCE(activates_at, created_at) DESC, kid',
        )
      ).rows.map((r): KeyRecord => ({
        kid: r.kid,
        jwk: r.jwk,
        createdAt: Number(r.created_at),
        activatesAt: num(r.activates_at),
        retiredAt: num(r.retired_at),
        removeAfter: num(r.remove_after),
      })),
    rotateKeys: async (fresh, expectedActiveKid, retire) => {
      try {
        return await tx(async (c) => {
          const current = await c.query<{ kid: string }>(
            'SELECT kid FROM identity_signing_keys WHERE retired_at IS NULL FOR UPDATE',
          );
          if (current.rows[0]?.kid !== expectedActiveKid) return false;
          await c.query(
            'DELETE FROM identity_signing_keys WHERE COALESCE(activates_at, created_at) > $1',
            [retire.at],
          );
          await c.query(
            `UPDATE identity_signing_keys SET retired_at = $1, remove_after = $2
             WHERE retired_at IS NULL OR retired_at > $1`,
            [retire.at, retire.removeAfter],
          );
          await c.query(
            'INSERT INTO identity_signing_keys (kid, jwk, created_at, activates_at) VALUES ($1, $2, $3, $4)',
            [fresh.kid, fresh.jwk, fresh.createdAt, fresh.activatesAt ?? fresh.createdAt],
          );
          return true;
        });
      } catch (err) {
        // Two replicas creating the first key at once: the one-active-key index refuses one.
        if ((err as { code?: string }).code === '23505') return false;
        throw err;
      }
    },
    deleteKeys: async (kids) => {
      if (kids.length)
        await pool.query('DELETE FROM identity_signing_keys WHERE kid = ANY($1)', [kids]);
    },
    cookieKeys: async () => {
      const list = async (c: pg.Pool | pg.PoolClient) =>
        (
          await c.query<{ key: string }>('SELECT key FROM identity_cookie_keys ORDER BY id DESC')
        ).rows.map((r) => r.key);
      const keys = await list(pool);
      if (keys.length) return keys;
      // Replicas starting together on an empty table: the lock lets one create the key and the
      // others read it after (a plain INSERT ... WHERE NOT EXISTS would race under READ COMMITTED).
      return tx(async (c) => {
        await c.query("SELECT pg_advisory_xact_lock(hashtext('bulwark_identity_cookie_keys'))");
        const again = await list(c);
        if (again.length) return again;
        const key = newCookieKey();
        await c.query('INSERT INTO identity_cookie_keys (key, created_at) VALUES ($1, $2)', [
          key,
          now(),
        ]);
        return [key];
      });
    },
    sweep: async () => {
      await pool.query(
        'DELETE FROM identity_oidc_models WHERE expires_at IS NOT NULL AND expires_at < $1',
        [now()],
      );
    },
    close: async () => {
      if (!options.pool) await pool.end();
    },
  };
}
