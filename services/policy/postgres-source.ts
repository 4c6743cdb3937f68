import pg from 'pg';
import type { Logger } from 'pino';
import { validateModel } from './casbin-model.ts';
import { PolicyError } from './errors.ts';
import {
  compilePolicyRows,
  policyRevision,
  policyRows,
  type CompiledPolicy,
  type PolicyRow,
} from './policy-document.ts';
import type { LoadedPolicy, PolicySource } from './policy-source.ts';

/** Channel of change notifications; the payload is the new revision. */
export const POLICY_CHANNEL = 'bulwark_policy';

/** Schema of the policy tables; created by {@link ensurePolicySchema}. */
export const POLICY_SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS bulwark_policy_model (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  model_text text NOT NULL,
  revision text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS bulwark_policy_rule (
  seq integer PRIMARY KEY,
  ptype text NOT NULL CHECK (ptype IN ('p', 'g', 'm')),
  v0 text NOT NULL DEFAULT '', v1 text NOT NULL DEFAULT '', v2 text NOT NULL DEFAULT '',
  v3 text NOT NULL DEFAULT '', v4 text NOT NULL DEFAULT '', v5 text NOT NULL DEFAULT '',
  v6 text NOT NULL DEFAULT ''
);`;

/** Creates the policy tables if they do not exist. */
export async function ensurePolicySchema(client: pg.ClientBase | pg.Pool): Promise<void> {
  await client.query(POLICY_SCHEMA_SQL);
}

/**
 * Replaces the stored policy in one transaction and notifies every replica. The policy is
 * validated first (model and rows), so storage never holds a policy the service would refuse
 * from this writer.
 *
 * @example
 * ```ts
 * await writePolicy(pool, modelText, compilePolicyYaml(yamlText));
 * ```
 */
export async function writePolicy(
  pool: pg.Pool,
  modelText: string,
  policy: CompiledPolicy,
): Promise<string> {
  validateModel(modelText);
  const revision = policyRevision(modelText, policy);
  const rows = policyRows(policy);
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(POLICY_SCHEMA_SQL);
    await client.query('DELETE FROM bulwark_policy_rule');
    await client.query(
      `INSERT INTO bulwark_policy_model (singleton, model_text, revision) VALUES (true, $1, $2)
       ON CONFLICT (singleton) DO UPDATE SET model_text = $1, revision = $2, updated_at = now()`,
      [modelText, revision],
    );
    for (let i = 0; i < rows.length; i += 1000) {
      await insertRows(client, rows.slice(i, i + 1000), i);
    }
    await client.query('SELECT pg_notify($1, $2)', [POLICY_CHANNEL, revision]);
    await client.query('COMMIT');
    return revision;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

async function insertRows(client: pg.PoolClient, rows: PolicyRow[], offset: number): Promise<void> {
  const params: unknown[] = [];
  const tuples = rows.map((row, i) => {
    const values = [
      offset + i,
      row.ptype,
      ...Array.from({ length: 7 }, (_, k) => row.values[k] ?? ''),
    ];
    const base = params.length;
    params.push(...values);
    return `(${values.map((_, k) => `$${base + k + 1}`).join(', ')})`;
  });
  await client.query(
    `INSERT INTO bulwark_policy_rule (seq, ptype, v0, v1, v2, v3, v4, v5, v6) VALUES ${tuples.join(', ')}`,
    params,
  );
}

/** Options of {@link createPostgresSource}. */
export interface PostgresSourceOptions {
  /**
   * Connection URL, e.g. `postgres://policy@db:5432/bulwark`. Keep the password out of it:
   * `PGPASSWORD` or `~/.pgpass` are read by the driver.
   */
  url: string;
  logger: Logger;
  /** Wait before re-listening after the notification connection drops. Default 1000 ms. */
  reconnectMs?: number;
}

/**
 * Policy stored in PostgreSQL (a small adapter of Bulwark's own: Casbin-style rows plus the
 * model text), with LISTEN/NOTIFY so every replica reloads as soon as a writer commits. A lost
 * notification connection is re-established and followed by a reload, so nothing is missed.
 *
 * @example
 * ```ts
 * const source = createPostgresSource({ url: 'postgres://policy@db/bulwark', logger });
 * const store = await createPolicyStore({ source, logger });
 * ```
 */
export function createPostgresSource(
  options: PostgresSourceOptions,
): PolicySource & { close(): Promise<void> } {
  const { logger, reconnectMs = 1000 } = options;
  if (!options.url) throw new TypeError('url is required');
  const pool = new pg.Pool({ connectionString: options.url, max: 2 });
  pool.on('error', (err) =>
    logger.warn({ err: { message: err.message } }, 'policy database connection error'),
  );
  return {
    name: 'postgresql:bulwark_policy_rule',
    async load(): Promise<LoadedPolicy> {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw new PolicyError('ERR_POLICY_SOURCE_UNAVAILABLE', 'policy database unreachable', {
          cause: err,
        });
      }
      try {
        // One snapshot for model and rows, so a concurrent writer is seen entirely or not at all.
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const model = await client.query<{ model_text: string }>(
          'SELECT model_text FROM bulwark_policy_model',
        );
        const rows = await client.query<Record<string, string>>(
          'SELECT ptype, v0, v1, v2, v3, v4, v5, v6 FROM bulwark_policy_rule ORDER BY seq',
        );
        await client.query('COMMIT');
        const modelText = model.rows[0]?.model_text;
        if (modelText === undefined)
          throw new PolicyError('ERR_POLICY_INVALID', 'policy database holds no model');
        const policy = compilePolicyRows(
          rows.rows.map((r) => ({
            ptype: r.ptype!,
            values: [r.v0!, r.v1!, r.v2!, r.v3!, r.v4!, r.v5!, r.v6!].slice(
              0,
              r.ptype === 'p' ? 7 : r.ptype === 'g' ? 3 : 2,
            ),
          })),
          'policy database',
        );
        return { modelText, policy };
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        if (err instanceof PolicyError) throw err;
        throw new PolicyError('ERR_POLICY_SOURCE_UNAVAILABLE', 'cannot read the policy database', {
          cause: err,
        });
      } finally {
        client.release();
      }
    },
    watch(onChange) {
      let stopped = false;
      let listener: pg.Client | undefined;
      let timer: NodeJS.Timeout | undefined;
      const connect = async (): Promise<void> => {
        if (stopped) return;
        const client = new pg.Client({ connectionString: options.url });
        const retry = (err?: Error) => {
          if (stopped || listener !== client) return;
          listener = undefined;
          logger.warn(
            { err: err ? { message: err.message } : undefined },
            'policy change notifications lost; reconnecting',
          );
          client.end().catch(() => undefined);
          timer = setTimeout(() => void connect(), reconnectMs);
        };
        listener = client;
        client.on('error', retry);
        client.on('end', () => retry());
        client.on('notification', (msg) => {
          if (msg.channel === POLICY_CHANNEL) onChange();
        });
        try {
          await client.connect();
          await client.query(`LISTEN ${POLICY_CHANNEL}`);
          // Changes may have happened while not listening.
          onChange();
        } catch (err) {
          retry(err as Error);
        }
      };
      void connect();
      return () => {
        stopped = true;
        clearTimeout(timer);
        const client = listener;
        listener = undefined;
        void client?.end().catch(() => undefined);
      };
    },
    async close() {
      await pool.end();
    },
  };
}
