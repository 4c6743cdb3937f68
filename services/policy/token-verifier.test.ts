import { createPublicKey } from 'node:crypto';
import {
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  SignJWT,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
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
  key: { privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'] | Uint8Array },
  alg: string,
  kid: string,
  claims: JWTPayload,
  typ = 'at+jwt',
) {
  const jwt = new SignJWT({ org: 'acme', iss: issuer, aud: audience, ...claims })
    .setProtectedHeader({ alg, typ, kid })
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
      'an unsigned token (alg none)',
      () => {
        const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
        const claims = { iss: issuer, aud: audience, sub: 'acme/bob', org: 'acme', exp: at + 300 };
        return `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(claims)}.`;
      },
      'invalid token',
    ],
    [
      'an HS256 token keyed with the published public key',
      () => {
        const pem = createPublicKey({ key: keys[0]!.jwk, format: 'jwk' }).export({
          type: 'spki',
          format: 'pem',
        });
        return sign({ privateKey: Buffer.from(pem) }, 'HS256', 'es', { sub: 'acme/bob' });
      },
      'invalid token',
    ],
    [
      'a token from another issuer',
      () => sign(keys[0]!, 'ES256', 'es', { sub: 'acme/bob', iss: 'https://evil.test' }),
      'invalid token',
    ],
    [
      'a token for another audience',
      () => sign(keys[0]!, 'ES256', 'es', { sub: 'acme/bob', aud: 'urn:bulwark:audit' }),
      'invalid token',
    ],
    [
      'an expired token',
      () => sign(keys[0]!, 'ES256', 'es', { sub: 'acme/bob', exp: at - 31 }),
      'token expired',
    ],
    [
      'a token that is not yet valid',
      () => sign(keys[0]!, 'ES256', 'es', { sub: 'acme/bob', nbf: at + 31 }),
      'token not yet valid',
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

  describe('with verified tokens cached', () => {
    const clock = { ms: now.getTime() };
    let published: JWTVerifyGetKey;
    const cached = (cacheSize = 100) =>
      createTokenVerifier({
        issuer,
        audience,
        keys: (header, token) => published(header, token),
        now: () => new Date(clock.ms),
        cacheSize,
      });
    beforeEach(() => {
      clock.ms = now.getTime();
      published = createLocalJWKSet({ keys: keys.map((k) => k.jwk) });
    });

    it('refuses a token with one byte changed after the genuine one was accepted', async () => {
      const verifier = cached();
      const token = await sign(keys[0]!, 'ES256', 'es', { sub: 'acme/bob' });
      expect((await verifier.verify(token)).subject).toBe('acme/bob');
      const [header, payload, signature] = token.split('.') as [string, string, string];
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as JWTPayload;
      const admin = Buffer.from(JSON.stringify({ ...claims, sub: 'acme/admin' })).toString(
        'base64url',
      );
      const swap = (s: string, i: number) =>
        s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
      for (const tampered of [
        `${header}.${admin}.${signature}`,
        `${header}.${swap(payload, 10)}.${signature}`,
        `${header}.${payload}.${swap(signature, signature.length - 1)}`,
        `${swap(header, 2)}.${payload}.${signature}`,
      ]) {
        await expect(verifier.verify(tampered)).rejects.toMatchObject({
          code: 'ERR_POLICY_UNAUTHENTICATED',
        });
      }
      expect((await verifier.verify(token)).subject).toBe('acme/bob');
    });

    it('refuses a cached token once it has expired', async () => {
      const verifier = cached();
      const token = await sign(keys[0]!, 'ES256', 'es', { sub: 'acme/bob', exp: at + 60 });
      await verifier.verify(token);
      clock.ms += 91_000;
      await expect(verifier.verify(token)).rejects.toMatchObject({ message: 'token expired' });
    });

    it('refuses a cached token once its key is no longer published', async () => {
      const verifier = cached();
      const token = await sign(keys[0]!, 'ES256', 'es', { sub: 'acme/bob' });
      await verifier.verify(token);
      published = createLocalJWKSet({ keys: [keys[1]!.jwk] });
      await expect(verifier.verify(token)).rejects.toMatchObject({ message: 'invalid token' });
    });

    it('evicts when full and still answers correctly', async () => {
      const verifier = cached(2);
      const tokens = await Promise.all(
        ['a', 'b', 'c'].map((n) => sign(keys[0]!, 'ES256', 'es', { sub: `acme/${n}` })),
      );
      // Twice round three tokens with room for two: every call meets a full cache.
      for (const token of [...tokens, ...tokens]) {
        const sub = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).sub;
        expect((await verifier.verify(token)).subject).toBe(sub);
      }
      const bad = await sign(keys[0]!, 'ES256', 'es', { sub: 'acme/d', aud: 'urn:bulwark:audit' });
      await expect(verifier.verify(bad)).rejects.toMatchObject({ message: 'invalid token' });
    });

    it('reads a fresh identity each time, so a caller cannot alter the cached one', async () => {
      const verifier = cached();
      const token = await sign(keys[0]!, 'ES256', 'es', { sub: 'acme/bob', roles: ['analyst'] });
      const first = await verifier.verify(token);
      first.roles.push('admin');
      expect((await verifier.verify(token)).roles).toEqual(['analyst']);
    });
  });
});
