/**
 * A bounded memory of tokens whose signature and claims were verified, so a caller re-using
 * its token does not pay a signature check per call (what gateways do: Envoy jwt_authn's
 * `jwt_cache_config`). Only successes are stored, keyed by the exact token text: a token that
 * differs in any byte is a different key and is verified on its own.
 */

/** Options of {@link createVerifiedTokenCache}; every default is listed. */
export interface VerifiedTokenCacheOptions {
  /** Most entries kept; the least recently used goes first. Default 10,000; 0 disables. */
  maxEntries?: number;
  /** Clock. Default real time. */
  now?: () => Date;
  /** Skew allowed for `exp`/`nbf`, seconds: use the verifier's. Default 30. */
  clockToleranceSec?: number;
}

/** What the verifier established about a token when it verified it. */
export interface VerifiedTokenFacts<K> {
  /** `exp` claim (seconds since the epoch). Without a finite `exp` nothing is stored. */
  exp: number;
  /** `nbf` claim, when the token has one. */
  nbf?: number;
  /** The key that verified the signature (a key object or its `kid`). */
  key: K;
}

/** Counters since creation. */
export interface VerifiedTokenCacheStats {
  hits: number;
  misses: number;
  /** Entries pushed out because the cache was full. */
  evictions: number;
}

export interface VerifiedTokenCache<T, K = unknown> {
  /**
   * The stored value for exactly this token, or `undefined` when there is none, its time
   * window (with the tolerance) does not hold now, or `keyIsCurrent` says the key that
   * verified it is no longer in the key set (retired or replaced). Entries that can no longer
   * be honoured are dropped.
   */
  get(token: string, keyIsCurrent: (key: K) => boolean): T | undefined;
  /** Remembers a token that passed every check. Call it only after a successful verification. */
  set(token: string, value: T, facts: VerifiedTokenFacts<K>): void;
  delete(token: string): void;
  /** Forgets everything (e.g. when the key set changed). */
  clear(): void;
  readonly size: number;
  stats(): VerifiedTokenCacheStats;
}

interface Entry<T, K> {
  value: T;
  exp: number;
  nbf: number | undefined;
  key: K;
}

/**
 * @example
 * ```ts
 * const cache = createVerifiedTokenCache<Claims, KeyObject>({ maxEntries: 10_000, now });
 * const hit = cache.get(token, (key) => currentKeys.includes(key));
 * if (!hit) {
 *   const claims = verifySlowly(token); // throws when invalid: nothing is stored
 *   cache.set(token, claims, { exp: claims.exp, nbf: claims.nbf, key });
 * }
 * ```
 */
export function createVerifiedTokenCache<T, K = unknown>(
  options: VerifiedTokenCacheOptions = {},
): VerifiedTokenCache<T, K> {
  const config = { maxEntries: 10_000, now: () => new Date(), clockToleranceSec: 30, ...options };
  if (!Number.isInteger(config.maxEntries) || config.maxEntries < 0) {
    throw new TypeError('createVerifiedTokenCache: "maxEntries" must be a non-negative integer');
  }
  if (!Number.isFinite(config.clockToleranceSec) || config.clockToleranceSec < 0) {
    throw new TypeError('createVerifiedTokenCache: "clockToleranceSec" must be >= 0');
  }
  const { maxEntries, clockToleranceSec: tolerance } = config;
  // A Map iterates in insertion order: re-inserting on use keeps the oldest-used entry first.
  const entries = new Map<string, Entry<T, K>>();
  const stats: VerifiedTokenCacheStats = { hits: 0, misses: 0, evictions: 0 };
  // Whole seconds, compared like the verifier does (jose: exp <= now - tolerance is expired).
  const nowSec = () => Math.floor(config.now().getTime() / 1000);
  const inWindow = (exp: number, nbf: number | undefined, t: number) =>
    exp > t - tolerance && (nbf === undefined || nbf <= t + tolerance);

  return {
    get(token, keyIsCurrent) {
      const entry = entries.get(token);
      if (!entry) {
        stats.misses += 1;
        return undefined;
      }
      if (!inWindow(entry.exp, entry.nbf, nowSec()) || !keyIsCurrent(entry.key)) {
        entries.delete(token);
        stats.misses += 1;
        return undefined;
      }
      entries.delete(token);
      entries.set(token, entry);
      stats.hits += 1;
      return entry.value;
    },
    set(token, value, facts) {
      if (maxEntries === 0) return;
      const { exp, nbf, key } = facts;
      if (typeof exp !== 'number' || !Number.isFinite(exp)) return;
      if (nbf !== undefined && (typeof nbf !== 'number' || !Number.isFinite(nbf))) return;
      if (!inWindow(exp, nbf, nowSec())) return;
      entries.delete(token);
      entries.set(token, { value, exp, nbf, key });
      while (entries.size > maxEntries) {
        entries.delete(entries.keys().next().value!);
        stats.evictions += 1;
      }
    },
    delete(token) {
      entries.delete(token);
    },
    clear() {
      entries.clear();
    },
    get size() {
      return entries.size;
    },
    stats: () => ({ ...stats }),
  };
}
