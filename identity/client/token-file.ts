import { chmodSync, mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** What `bulwark login` stores for `bulwark token`. A secret: mode 0600, never printed whole. */
export interface StoredSession {
  issuer: string;
  clientId: string;
  org: string;
  resource: string;
  scope: string;
  accessToken: string;
  /** Epoch seconds. */
  expiresAt: number;
  refreshToken?: string;
}

/** Default file: `$BULWARK_TOKEN_FILE`, else `~/.config/bulwark/session.json`. */
export function defaultTokenFile(env: NodeJS.ProcessEnv = process.env): string {
  return env.BULWARK_TOKEN_FILE ?? join(homedir(), '.config', 'bulwark', 'session.json');
}

/** Writes atomically with mode 0600 (directory 0700), so no other user can read the tokens. */
export function writeSession(path: string, session: StoredSession): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(session, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export function readSession(path: string): StoredSession | undefined {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const parsed = JSON.parse(raw) as Partial<StoredSession>;
  if (typeof parsed.accessToken !== 'string' || typeof parsed.issuer !== 'string') return undefined;
  return parsed as StoredSession;
}
