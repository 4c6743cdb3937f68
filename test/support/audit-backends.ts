/**
 * The two audit storage backends for tests, with raw access to the tables so tests can tamper
 * with the log behind the service's back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openPostgresStore } from '../../services/audit/store/postgres-store.ts';
import {
  openSqliteStore,
  type SqliteStoreOptions,
} from '../../services/audit/store/sqlite-store.ts';
import type { AuditStore } from '../../services/audit/store/types.ts';
import { startPostgres, type PostgresInstance } from './postgres.ts';

export interface AuditBackendHandle {
  /** A fresh, empty store location; `open()` may be called again to reopen it. */
  open(extra?: Partial<SqliteStoreOptions>): Promise<AuditStore>;
  /** Runs raw SQL against the same tables (tampering). `?` placeholders are positional. */
  sql(statement: string, ...args: Array<string | number | Buffer>): Promise<void>;
  /** Where a separate process can reach the same store. */
  location: { sqlitePath?: string; postgresUrl?: string; schema?: string };
}

export interface AuditBackend {
  name: 'sqlite' | 'postgres';
  fresh(): Promise<AuditBackendHandle>;
  teardown(): Promise<void>;
}

export function sqliteBackend(): AuditBackend {
  const dirs: string[] = [];
  return {
    name: 'sqlite',
    fresh: async () => {
      const dir = mkdtempSync(join(tmpdir(), 'audit-'));
      dirs.push(dir);
      const path = join(dir, 'audit.db');
      return {
        open: async (extra = {}) => openSqliteStore({ path, ...extra }),
        sql: async (statement, ...args) => {
          const db = new DatabaseSync(path);
          try {
            db.prepare(statement).run(...args);
          } finally {
            db.close();
          }
        },
        location: { sqlitePath: path },
      };
    },
    teardown: async () => {
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
}

export function postgresBackend(): AuditBackend {
  let instance: PostgresInstance | undefined;
  let n = 0;
  return {
    name: 'postgres',
    fresh: async () => {
      instance ??= await startPostgres();
      const url = instance.url;
      const schema = `t${++n}_${process.pid}`;
      return {
        open: async () => openPostgresStore({ connectionString: url, schema }),
        sql: async (statement, ...args) => {
          const client = new pg.Client({ connectionString: url });
          await client.connect();
          try {
            let i = 0;
            const text = statement.replace(/\?/g, () => `$${++i}`);
            await client.query(`SET search_path TO ${schema}`);
            await client.query(text, args);
          } finally {
            await client.end();
          }
        },
        location: { postgresUrl: url, schema },
      };
    },
    teardown: async () => {
      await instance?.stop();
      instance = undefined;
    },
  };
}
