import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { createTokenVerifier } from './token-verifier.ts';

const now = new Date('2026-05-01T08:00:00Z');
const at = now.getTime() / 1000;
const issuer = 'https://id.bulwark.test';
const audience = 'urn:bulwark:inference';

async function keyPair(alg: 'ES256' | 'EdDSA' | 'RS256', kid: string) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { jwk: { ...(await exportJWK(publicKey)), kid, alg }, privateKey };
}

async function sign(
  key: { privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'] },
  alg: string,
  kid: string,
  claims: JWTPayload,
  typ = 'at+jwt',
) {
  const jwt = new SignJWT({ org: 'acme', ...claims })
    .setProtectedHeader({ alg, typ, kid })
    .setIssuer(issuer)
    .setAudience(audience)
    .setIssuedAt(at);
  if (!('exp' in claims)) jwt.setExpirationTime(at + 300);
  return jwt.sign(key.privateKey);
}

describe('token verifier', () => {
  let keys: Awaited<ReturnType<typeof keyPair>>[];
  let verifier: ReturnType<typeof createTokenVerifier>;
  beforeAll(async () => {
    keys = [
      await keyPair('ES256', 'es'),
      await keyPair('EdDSA', 'ed'),
      await keyPair('RS256', 'rs'),
    ];
    verifier = createTokenVerifier({
      issuer,
      audience,
      keys: createLocalJWKSet({ keys: keys.map((k) => k.jwk) }),
      now: () => now,
    });
  });

  it('accepts ES256 and EdDSA access tokens and reads the identity', async () => {
    const es = await sign(keys[0]!, 'ES256', 'es', {
      sub: 'acme/alice',
      roles: ['analyst', 7],
      scope: 'model:infer audit:read',
      acr: 'mfa',
      client_id: 'app',
      cnf: { 'x5t#S256': 'abc' },
    });
    expect(await verifier.verify(es)).toEqual({
      subject: 'acme/alice',
      org: 'acme',
      roles: ['analyst'],
      scopes: ['model:infer', 'audit:read'],
      acr: 'mfa',
      clientId: 'app',
      certificateThumbprint: 'abc',
    });
    const ed = await sign(keys[1]!, 'EdDSA', 'ed', { sub: 'acme/bob' });
    expect((await verifier.verify(ed)).subject).toBe('acme/bob');
  });

  it.each([
    [
      'an RS256 token from a published key',
      () => sign(keys[2]!, 'RS256', 'rs', { sub: 'acme/bob' }),
      'invalid token',
    ],
    [
      'a token without typ at+jwt',
      () => sign(keys[0]!, 'ES256', 'es', { sub: 'acme/bob' }, 'JWT'),
      'invalid token',
    ],
    [
      'a token without exp',
      () => sign(keys[0]!, 'ES256', 'es', { sub: 'acme/bob', exp: undefined }),
      'invalid token',
    ],
    [
      'a token without org',
      () => sign(keys[0]!, 'ES256', 'es', { sub: 'acme/bob', org: undefined }),
      'token lacks a subject or organisation',
    ],
    [
      'a token with an unknown confirmation',
      () => sign(keys[0]!, 'ES256', 'es', { sub: 'acme/bob', cnf: { jkt: 'x' } }),
      'token confirmation is not understood',
    ],
  ])('refuses %s', async (_name, make, message) => {
    await expect(verifier.verify(await make())).rejects.toMatchObject({
      code: 'ERR_POLICY_UNAUTHENTICATED',
      message,
    });
  });

  it('re-checks iss, aud and the time window of gateway-verified payloads', () => {
    const good = { sub: 'acme/bob', org: 'acme', iss: issuer, aud: [audience, 'x'], exp: at + 60 };
    expect(verifier.fromVerifiedPayload(good).subject).toBe('acme/bob');
    expect(() => verifier.fromVerifiedPayload({ ...good, aud: 'urn:bulwark:audit' })).toThrow(
      'invalid token',
    );
    expect(() => verifier.fromVerifiedPayload({ ...good, exp: at - 60 })).toThrow('token expired');
    expect(() => verifier.fromVerifiedPayload({ ...good, nbf: at + 600 })).toThrow(
      'token not yet valid',
    );
    expect(() => verifier.fromVerifiedPayload({ ...good, exp: undefined })).toThrow(
      'token expired',
    );
  });
});
