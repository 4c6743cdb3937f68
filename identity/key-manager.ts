import { createHash, generateKeyPairSync } from 'node:crypto';
import type { IdentityStore, KeyRecord } from './store.ts';

/** A signing key's public facts (never the private part). */
export interface SigningKeyInfo {
  kid: string;
  alg: 'ES256';
  /** When the key was added, and so published. */
  createdAt: number;
  /** When it starts (or started) signing; later than `createdAt` for a scheduled rotation. */
  activatesAt: number;
  /** When it stops (or stopped) signing; undefined while no next key is scheduled. */
  retiredAt?: number;
  /** When it leaves the JWKS. */
  removeAfter?: number;
  /** Whether it signs now. */
  active: boolean;
}

/** A key change: the key that signs from `active.activatesAt` and the one it replaces. */
export interface KeySwitch {
  active: SigningKeyInfo;
  retired?: SigningKeyInfo;
}

/**
 * The broker's ES256 signing keys: kept in the store (shared by replicas), cached in memory
 * for the synchronous reads `oidc-provider` makes, rotated on schedule and on demand.
 *
 * Which key signs is worked out from the stored times and the clock alone: the newest key
 * whose activation time has passed and that is not retired yet. Replicas sharing a store so
 * agree on it without talking to each other.
 */
export interface KeyManager {
  /** Private JWKS for `oidc-provider`: the signing key first, then every other published key. */
  privateJwks(): { keys: Record<string, unknown>[] };
  /** The key that signs now. */
  active(): SigningKeyInfo;
  /** Keys in the JWKS now, the signing key first, then newest first. */
  published(): SigningKeyInfo[];
  /**
   * On-demand rotation (a key may be compromised): a new key signs at once and the current
   * one is retired now (a key scheduled but not yet signing is dropped). The retired key stays
   * published for `retainSeconds`; other replicas publish the new key at their next `tick`.
   */
  rotate(): Promise<KeySwitch>;
  /**
   * True when the JWKS handed out by {@link privateJwks} is no longer the one to use now: a
   * scheduled key reached its activation time, or a key its removal time. Reads no store, so
   * it is cheap enough to ask on every request and switch exactly on time.
   */
  stale(): boolean;
  /**
   * Reloads from the store (another replica may have rotated), publishes the next key
   * `publishLeadMs` before the signing key reaches the rotation period, and drops keys past
   * their removal time. `scheduled`: this replica published the next key; `activated`: a key
   * scheduled ahead started signing since the last tick; `changed` tells the caller to rebuild
   * the provider.
   */
  tick(): Promise<{
    scheduled?: KeySwitch;
    activated?: KeySwitch;
    removed: string[];
    changed: boolean;
  }>;
}

const activeFrom = (r: KeyRecord) => r.activatesAt ?? r.createdAt;
const signsAt = (r: KeyRecord, t: number) =>
  activeFrom(r) <= t && (r.retiredAt === undefined || r.retiredAt > t);
const newestFirst = (a: KeyRecord, b: KeyRecord) =>
  activeFrom(b) - activeFrom(a) || (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0);

const info = (r: KeyRecord, t: number): SigningKeyInfo => ({
  kid: r.kid,
  alg: 'ES256',
  createdAt: r.createdAt,
  activatesAt: activeFrom(r),
  retiredAt: r.retiredAt,
  removeAfter: r.removeAfter,
  active: signsAt(r, t),
});

function newKey(now: number, activatesAt: number): KeyRecord {
  const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    format: 'jwk',
  });
  // RFC 7638 thumbprint as kid: stable and derived from the public key only.
  const kid = createHash('sha256')
    .update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }))
    .digest('base64url');
  return {
    kid,
    jwk: JSON.stringify({ ...jwk, kid, alg: 'ES256', use: 'sig' }),
    createdAt: now,
    activatesAt,
  };
}

/** Options of {@link openKeyManager}. */
export interface KeyManagerOptions {
  store: IdentityStore;
  now: () => number;
  /** How long a key signs before the next one takes over. */
  rotationSeconds: number;
  /**
   * How long a key stays published after it stopped signing. Must cover the longest lifetime
   * of anything a key signs (access and ID tokens), so every token verifies until it expires.
   */
  retainSeconds: number;
  /**
   * How long before it signs a scheduled key is published. Must exceed the longest time a
   * replica (or a JWKS consumer) can take to reload keys. Default 0 (switch at once).
   */
  publishLeadMs?: number;
}

/**
 * Opens the key manager; creates the first key (signing at once) when the store has none.
 *
 * @example
 * ```ts
 * const keys = await openKeyManager({
 *   store, now: Date.now, rotationSeconds: 86400, retainSeconds: 360, publishLeadMs: 120_000,
 * });
 * await keys.tick(); // on a timer: reload, schedule, expire
 * ```
 */
export async function openKeyManager(options: KeyManagerOptions): Promise<KeyManager> {
  const { store, now } = options;
  const leadMs = options.publishLeadMs ?? 0;
  const retainMs = options.retainSeconds * 1000;
  let rows: KeyRecord[] = [];
  const reload = async () => {
    rows = (await store.listKeys()).sort(newestFirst);
  };
  const live = (t: number) => rows.filter((r) => r.removeAfter === undefined || r.removeAfter > t);
  // Stored times never leave a gap; should they, the newest key already due signs, and never
  // one still waiting for its activation time unless it is the only key.
  const signing = (t: number) =>
    rows.find((r) => signsAt(r, t)) ?? rows.find((r) => activeFrom(r) <= t) ?? rows[0];
  // The newest key: the only one without a retirement time (a store invariant).
  const head = () => rows.find((r) => r.retiredAt === undefined);
  const ordered = (t: number) => {
    const s = signing(t);
    return live(t).sort((a, b) => (a === s ? -1 : b === s ? 1 : 0));
  };
  const signature = (t: number) =>
    ordered(t)
      .map((r) => `${r.kid}:${r.retiredAt ?? ''}`)
      .join(',');
  // What the provider was last built with; `tick` and `stale` report a change against it.
  let handedOut = '';
  // The signing key this replica last reported, to notice a scheduled key taking over.
  let lastSigning: KeyRecord | undefined;

  async function rotate(): Promise<KeySwitch> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const t = now();
      const before = signing(t);
      const fresh = newKey(t, t);
      const removeAfter = t + retainMs;
      const done = await store.rotateKeys(fresh, head()?.kid, { at: t, removeAfter });
      await reload();
      if (done) {
        lastSigning = fresh;
        return {
          active: info(fresh, t),
          retired: before ? info({ ...before, retiredAt: t, removeAfter }, t) : undefined,
        };
      }
    }
    throw new Error('signing key rotation kept racing with another replica');
  }

  /** Publishes the next key when the signing one nears the end of its period. */
  async function schedule(t: number): Promise<KeySwitch | undefined> {
    const current = head();
    // None yet, or the next key is already published and waiting for its time.
    if (!current || activeFrom(current) > t) return undefined;
    const due = activeFrom(current) + options.rotationSeconds * 1000;
    if (t < due - leadMs) return undefined;
    // Late (every replica was down): still give every replica the whole lead time.
    const at = Math.max(due, t + leadMs);
    const fresh = newKey(t, at);
    const removeAfter = at + retainMs;
    // Compare-and-set on the newest key: of replicas reaching this point together, one adds
    // the next key and the others see it at their reload.
    const done = await store.rotateKeys(fresh, current.kid, { at, removeAfter });
    await reload();
    return done
      ? { active: info(fresh, t), retired: info({ ...current, retiredAt: at, removeAfter }, t) }
      : undefined;
  }

  await reload();
  if (!head()) await rotate();
  lastSigning = signing(now());

  return {
    privateJwks: () => {
      const t = now();
      handedOut = signature(t);
      return { keys: ordered(t).map((r) => JSON.parse(r.jwk) as Record<string, unknown>) };
    },
    active: () => {
      const t = now();
      return info(signing(t)!, t);
    },
    published: () => {
      const t = now();
      return ordered(t).map((r) => info(r, t));
    },
    rotate,
    stale: () => signature(now()) !== handedOut,
    async tick() {
      await reload();
      const scheduled = await schedule(now());
      const t = now();
      const expired = rows
        .filter((r) => r.removeAfter !== undefined && r.removeAfter <= t)
        .map((r) => r.kid);
      if (expired.length) {
        await store.deleteKeys(expired);
        await reload();
      }
      const s = signing(t);
      let activated: KeySwitch | undefined;
      // Only keys published ahead: an on-demand rotation is reported by the replica that made it.
      if (s && s.kid !== lastSigning?.kid && activeFrom(s) > s.createdAt) {
        const previous =
          lastSigning && (rows.find((r) => r.kid === lastSigning?.kid) ?? lastSigning);
        activated = { active: info(s, t), retired: previous && info(previous, t) };
      }
      lastSigning = s;
      return { scheduled, activated, removed: expired, changed: signature(t) !== handedOut };
    },
  };
}
