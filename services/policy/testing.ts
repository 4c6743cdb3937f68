import {
  exportJWK,
  generateKeyPair,
  createLocalJWKSet,
  SignJWT,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';

/** A throw-away token issuer for tests and benchmarks (keys generated at run time). */
export interface TestIssuer {
  issuer: string;
  /** Key source for {@link createTokenVerifier}: the issuer's public JWKS. */
  keys: JWTVerifyGetKey;
  /** The public key as a JWK (for attacker tests that misuse it). */
  publicJwk: Record<string, unknown>;
  /** Signs an RFC 9068 access token (ES256, `typ: at+jwt`) valid for 5 minutes from `now`. */
  mint(
    claims: JWTPayload,
    options?: {
      audience?: string;
      issuer?: string;
      now?: Date;
      lifetimeSec?: number;
      notBefore?: Date;
      typ?: string;
    },
  ): Promise<string>;
}

/**
 * Creates a test issuer with a fresh ES256 key.
 *
 * @example
 * ```ts
 * const idp = await createTestIssuer({ now: () => clock });
 * const token = await idp.mint({ sub: 'acme/bob', org: 'acme' });
 * ```
 */
export async function createTestIssuer(
  options: { issuer?: string; audience?: string; now?: () => Date } = {},
): Promise<TestIssuer> {
  const issuer = options.issuer ?? 'https://id.bulwark.test';
  const audience = options.audience ?? 'urn:bulwark:inference';
  const now = options.now ?? (() => new Date());
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid: 'test-1', alg: 'ES256', use: 'sig' };
  return {
    issuer,
    publicJwk,
    keys: createLocalJWKSet({ keys: [publicJwk] }),
    async mint(claims, o = {}) {
      const at = Math.floor((o.now ?? now()).getTime() / 1000);
      const jwt = new SignJWT({ client_id: 'test-client', scope: 'model:infer', ...claims })
        .setProtectedHeader({ alg: 'ES256', typ: o.typ ?? 'at+jwt', kid: 'test-1' })
        .setIssuer(o.issuer ?? issuer)
        .setAudience(o.audience ?? audience)
        .setIssuedAt(at)
        .setJti(`jti-${at}-${Math.random().toString(36).slice(2)}`)
        .setExpirationTime(at + (o.lifetimeSec ?? 300));
      if (o.notBefore) jwt.setNotBefore(Math.floor(o.notBefore.getTime() / 1000));
      return jwt.sign(privateKey);
    },
  };
}
