import { createHash, generateKeyPairSync } from 'node:crypto';
import type { IdentityStore, KeyRecord } from './store.ts';

/** A signing key's public facts (never the private part). */
export interface SigningKeyInfo {
  kid: string;
  alg: 'ES256';
  createdAt: number;
  /** When it stopped signing; undefined for the active key. */
  retiredAt?: number;
  /** When it leaves the JWKS. */
  removeAfter?: number;
  active: boolean;
}

/**
 * The broker's ES256 signing keys: kept in the store (shared by replicas), cached in memory
 * for the synchronous reads `oidc-provider` makes, rotated on schedule and on demand.
 */
export interface KeyManager {
  /** Private JWKS for `oidc-provider`: the active key first, then retired keys still published. */
  privateJwks(): { keys: Record<string, unknown>[] };
  active(): SigningKeyInfo;
  /** Keys in the JWKS now, active first. */
  published(): SigningKeyInfo[];
  /** Makes a new key active; the old one stays published for `retainSeconds`. */
  rotate(): Promise<{ active: SigningKeyInfo; retired?: SigningKeyInfo }>;
  /**
   * Reloads from the store (another replica may have rotated), rotates when the active key
   * reached the rotation period and drops keys past their removal time. `changed` tells the
   * caller to rebuild the provider.
   */
  tick(): Promise<{
    rotated?: { active: SigningKeyInfo; retired?: SigningKeyInfo };
    removed: string[];
    changed: boolean;
  }>;
}

const info = (r: KeyRecord): SigningKeyInfo => ({
  kid: r.kid,
  alg: 'ES256',
  createdAt: r.createdAt,
  retiredAt: r.retiredAt,
  removeAfter: r.removeAfter,
  active: r.retiredAt === undefined,
});

function newKey(now: number): KeyRecord {
  const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    format: 'jwk',
  });
  // RFC 7638 thumbprint as kid: stable and derived from the public key only.
  const kid = createHash('sha256')
    .update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }))
    .digest('base64url');
  return { kid, jwk: JSON.stringify({ ...jwk, kid, alg: 'ES256', use: 'sig' }), createdAt: now };
}

/**
 * Opens the key manager; creates the first key when the store has none.
 *
 * `retainSeconds` must cover the longest lifetime of anything a key signs (access and ID
 * tokens), so every token signed before a rotation still verifies until it expires.
 *
 * @example
 * ```ts
 * const keys = await openKeyManager({ store, now: Date.now, rotationSeconds: 86400, retainSeconds: 360 });
 * await keys.rotate();
 * ```
 */
export async function openKeyManager(options: {
  store: IdentityStore;
  now: () => number;
  rotationSeconds: number;
  retainSeconds: number;
}): Promise<KeyManager> {
  const { store, now } = options;
  let rows: KeyRecord[] = [];
  const live = () => rows.filter((r) => r.removeAfter === undefined || r.removeAfter > now());
  const current = () => rows.find((r) => r.retiredAt === undefined);
  const signature = () =>
    live()
      .map((r) => `${r.kid}:${r.retiredAt ?? ''}`)
      .join(',');
  // What the provider was last built with; `tick` reports a change against it.
  let handedOut = '';

  async function rotate() {
    for (let attempt = 0; attempt < 3; attempt++) {
      const before = current();
      const t = now();
      const fresh = newKey(t);
      const removeAfter = t + options.retainSeconds * 1000;
      const done = await store.rotateKeys(fresh, before?.kid, { at: t, removeAfter });
      rows = await store.listKeys();
      if (done) {
        return {
          active: info(fresh),
          retired: before ? info({ ...before, retiredAt: t, removeAfter }) : undefined,
        };
      }
    }
    throw new Error('signing key rotation kept racing with another replica');
  }

  rows = await store.listKeys();
  if (!current()) await rotate();

  return {
    privateJwks: () => {
      handedOut = signature();
      return { keys: live().map((r) => JSON.parse(r.jwk) as Record<string, unknown>) };
    },
    active: () => info(current()!),
    published: () => live().map(info),
    rotate,
    async tick() {
      rows = await store.listKeys();
      const active = current()!;
      const rotated =
        now() - active.createdAt >= options.rotationSeconds * 1000 ? await rotate() : undefined;
      const expired = rows
        .filter((r) => r.removeAfter !== undefined && r.removeAfter <= now())
        .map((r) => r.kid);
      if (expired.length) {
        await store.deleteKeys(expired);
        rows = await store.listKeys();
      }
      return { rotated, removed: expired, changed: signature() !== handedOut };
    },
  };
}
