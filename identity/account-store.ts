/** A person or service known to the broker, keyed by `<org>/<upstream sub>`. */
export interface Account {
  accountId: string;
  org: string;
  email?: string;
  name?: string;
  roles: string[];
}

/** Accounts seen at login or token exchange, persisted so tokens can be refreshed later. */
export interface AccountStore {
  upsert(account: Account): Promise<void>;
  find(accountId: string): Promise<Account | undefined>;
}
