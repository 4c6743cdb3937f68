/**
 * The keys a JWKS key source (jose's `createRemoteJWKSet`/`createLocalJWKSet`, or any
 * `JWTVerifyGetKey`) offers for a token, as public `KeyObject`s, and key comparison: what a
 * verified-token cache needs to tell whether the key that verified a token is still published.
 */
import { createPublicKey, KeyObject } from 'node:crypto';
import {
  errors as joseErrors,
  type FlattenedJWSInput,
  type JWK,
  type JWTHeaderParameters,
  type JWTVerifyGetKey,
} from 'jose';
import { TokenError } from './token-error.ts';

const keyObjects = new WeakMap<object, KeyObject | null>();

/**
 * A key source's answer as a public `KeyObject` (converted once per key object), or null when
 * it is not a public asymmetric key: a secret, a private key or raw bytes never verify here.
 */
export function toPublicKeyObject(key: unknown): KeyObject | null {
  if (key instanceof KeyObject) return key.type === 'public' ? key : null;
  if (key === null || typeof key !== 'object' || key instanceof Uint8Array) return null;
  let converted = keyObjects.get(key);
  if (converted === undefined) {
    converted = null;
    try {
      if (key instanceof CryptoKey) {
        if (key.type === 'public' && key.usages.includes('verify')) converted = KeyObject.from(key);
      } else if (!('d' in key)) {
        converted = createPublicKey({ key: key as JWK, format: 'jwk' });
      }
    } catch {
      converted = null;
    }
    keyObjects.set(key, converted);
  }
  return converted;
}

/** Same key: the same object, or equal key material (a JWKS reload makes new objects). */
export const sameKey = (a: KeyObject, b: KeyObject): boolean => a === b || a.equals(b);

/**
 * Every public key the key source offers for this token header (usually one; several when
 * the set holds more than one match). Rejects with `ERR_TOKEN_KEY_NOT_FOUND` when none
 * matches and `ERR_TOKEN_KEYS_UNAVAILABLE` when the set cannot be read.
 *
 * @example
 * ```ts
 * const keys = await publishedKeys(jwks, header, { protected: h, payload: p, signature: s });
 * const stillPublished = keys.some((k) => sameKey(k, keyThatVerified));
 * ```
 */
export async function publishedKeys(
  source: JWTVerifyGetKey,
  header: JWTHeaderParameters,
  token: FlattenedJWSInput,
): Promise<KeyObject[]> {
  let found: unknown[];
  try {
    found = [await source(header, token)];
  } catch (err) {
    if (err instanceof joseErrors.JWKSMultipleMatchingKeys) {
      found = [];
      for await (const key of err as unknown as AsyncIterable<unknown>) found.push(key);
    } else if (err instanceof joseErrors.JWKSNoMatchingKey) {
      throw new TokenError('ERR_TOKEN_KEY_NOT_FOUND', 'no key in the key set matches the token', {
        cause: err,
      });
    } else {
      throw new TokenError('ERR_TOKEN_KEYS_UNAVAILABLE', 'the key set could not be read', {
        cause: err,
      });
    }
  }
  return found.map(toPublicKeyObject).filter((k): k is KeyObject => k !== null);
}
