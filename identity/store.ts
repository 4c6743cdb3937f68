import { randomBytes } from 'node:crypto';
import type { Adapter } from 'oidc-provider';
import type { Account } from './account-store.ts';

/**
 * A signing key as stored: the private JWK (JSON) and its lifecycle times (ms). A key is
 * published from `createdAt` to `removeAfter` and signs from `activatesAt` to `retiredAt`;
 * every replica works this out from the times alone, so a key published ahead of a scheduled
 * rotation starts signing everywhere at once without a second write.
 */
export interface KeyRecord {
  kid: string;
  /** Private JWK as JSON text. A secret: never logged or returned by an API. */
  jwk: string;
  /** When the key was added (and published). */
  createdAt: number;
  /**
   * When the key starts signing. Undefined (rows written before scheduled rotation existed):
   * since `createdAt`.
   */
  activatesAt?: number;
  /** When the key stops signing (may lie in the future: the next key is scheduled). */
  retiredAt?: number;
  /** When the key leaves the JWKS. */
  removeAfter?: number;
}

/**
 * Everything the broker persists. SQLite (`node:sqlite`) on one machine; PostgreSQL when
 * several broker replicas share state. Every method is safe to call from several replicas at
 * once on PostgreSQL.
 */
export interface IdentityStore {
  /** The class to hand to `oidc-provider`'s `adapter` option. */
  readonly Adapter: new (name: string) => Adapter;
  /**
   * Replaces the stored `Client` rows with these client metadata documents, leaving out every
   * client revoked in the store, read within the same transaction: a replica whose own list
   * is older can never bring back a client another replica revoked.
   */
  syncClients(clients: Record<string, unknown>[]): Promise<void>;
  /** Deletes every grant, token and code of a client; resolves to the number of grants removed. */
  revokeClientArtefacts(clientId: string): Promise<number>;
  revokedClients(): Promise<string[]>;
  addRevokedClient(clientId: string, at: number): Promise<void>;
  upsertAccount(account: Account, at: number): Promise<void>;
  findAccount(accountId: string): Promise<Account | undefined>;
  /** All stored keys, the latest activation time first. */
  listKeys(): Promise<KeyRecord[]>;
  /**
   * Adds `fresh` (signing from its `activatesAt`, at or after `retire.at`), atomically:
   * every key not retired by `retire.at` is retired then (`retiredAt`, `removeAfter` set)
   * and a key that would only have started signing after `retire.at` is deleted (it never
   * signed). A scheduled rotation passes the future activation time as `retire.at`; an
   * on-demand one passes now.
   *
   * Resolves false (and changes nothing) when the newest key (the one without `retiredAt`)
   * is no longer `expectedActiveKid`: another replica rotated or scheduled first, so two
   * replicas never both add a key for the same rotation.
   */
  rotateKeys(
    fresh: KeyRecord,
    expectedActiveKid: string | undefined,
    retire: { at: number; removeAfter: number },
  ): Promise<boolean>;
  deleteKeys(kids: string[]): Promise<void>;
  /**
   * The keys that sign the broker's cookies (login interaction, session, device flow), newest
   * first: `oidc-provider` signs with the first and accepts a cookie signed with any of them,
   * so a rotation prepends a key and drops the oldest later. Creates the first key
   * ({@link newCookieKey}) when there is none, atomically: replicas starting together on one
   * store all get the same single key. Secrets: never logged, audited or returned by an API.
   */
  cookieKeys(): Promise<string[]>;
  /** Removes expired `oidc-provider` rows. */
  sweep(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A fresh cookie key: 32 random bytes, base64url (the HMAC-SHA256 key of the cookie signatures).
 *
 * @example
 * ```ts
 * const key = newCookieKey(); // 43 characters; a secret
 * ```
 */
export function newCookieKey(): string {
  return randomBytes(32).toString('base64url');
}
