/**
 * Bearer-token verification shared by the services: a lean JWS verifier for mesh access
 * tokens and the bounded cache of verified tokens behind it.
 */
export {
  createJwtVerifier,
  type JwtVerifier,
  type JwtVerifierOptions,
  type VerifiedJwt,
} from './jwt-verifier.ts';
export { TokenError, type TokenErrorCode } from './token-error.ts';
export {
  createVerifiedTokenCache,
  type VerifiedTokenCache,
  type VerifiedTokenCacheOptions,
  type VerifiedTokenCacheStats,
  type VerifiedTokenFacts,
} from './verified-token-cache.ts';
export { publishedKeys, sameKey, toPublicKeyObject } from './published-keys.ts';
export {
  isJwtAlgorithm,
  JWT_ALGORITHMS,
  keyServes,
  verifyJws,
  verifyJwsOffThread,
  type JwtAlgorithm,
} from './jws-algorithms.ts';
