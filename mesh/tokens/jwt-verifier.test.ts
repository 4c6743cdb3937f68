import { createPublicKey, generateKeyPairSync, KeyObject, sign as signData } from 'node:crypto';
import fc from 'fast-check';
import {
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { createJwtVerifier, type JwtVerifierOptions } from './jwt-verifier.ts';

const start = Date.parse('2026-05-01T08:00:00Z');
const at = start / 1000;
const issuer = 'https://id.bulwark.test';
const audience = 'urn:bulwark:inference';

type Alg = 'ES256' | 'EdDSA' | 'RS256';
async function keyPair(alg: Alg, kid: string) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { jwk: { ...(await exportJWK(publicKey)), kid, alg } as JWK, privateKey, kid, alg };
}
type Pair = Awaited<ReturnType<typeof keyPair>>;

function sign(
  key: { privateKey: CryptoKey | Uint8Array },
  header: { alg: string; kid?: string; typ?: string },
  claims: JWTPayload = {},
) {
  return new SignJWT({
    iss: issuer,
    aud: audience,
    sub: 'acme/alice',
    org: 'acme',
    iat: at,
    exp: at + 300,
    ...claims,
  })
    .setProtectedHeader({ typ: 'at+jwt', ...header } as never)
    .sign(key.privateKey);
}
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Signs any header as is (jose refuses to sign some of the headers under test). */
function signRaw(key: { privateKey: CryptoKey }, header: object, claims: object) {
  const input = `${b64(header)}.${b64(claims)}`;
  const signature = signData('sha256', Buffer.from(input), {
    key: KeyObject.from(key.privateKey as never),
    dsaEncoding: 'ieee-p1363',
  });
  return `${input}.${signature.toString('base64url')}`;
}

describe('jwt verifier', () => {
  let es: Pair;
  let ed: Pair;
  let rs: Pair;
  let other: Pair;
  const clock = { ms: start };
  // A key source whose key set can change under the verifier (rotation, retirement).
  let current: JWTVerifyGetKey;
  const keys: JWTVerifyGetKey = (header, token) => current(header, token);
  const publish = (...pairs: Pair[]) => {
    current = createLocalJWKSet({ keys: pairs.map((p) => p.jwk) });
  };
  const verifier = (options: Partial<JwtVerifierOptions> = {}) =>
    createJwtVerifier({ issuer, audience, keys, now: () => new Date(clock.ms), ...options });

  beforeAll(async () => {
    [es, ed, rs, other] = await Promise.all([
      keyPair('ES256', 'es'),
      keyPair('EdDSA', 'ed'),
      keyPair('RS256', 'rs'),
      keyPair('ES256', 'es'),
    ]);
  });
  beforeEach(() => {
    clock.ms = start;
    publish(es, ed, rs);
  });

  it('accepts ES256 and EdDSA tokens and returns frozen claims', async () => {
    const v = verifier();
    const { header, payload } = await v.verify(await sign(es, { alg: 'ES256', kid: 'es' }));
    expect(header).toMatchObject({ alg: 'ES256', typ: 'at+jwt', kid: 'es' });
    expect(payload).toMatchObject({ sub: 'acme/alice', org: 'acme', aud: audience });
    expect(Object.isFrozen(payload)).toBe(true);
    expect(() => {
      (payload as { sub: string }).sub = 'acme/mallory';
    }).toThrow();
    const edToken = await sign(ed, { alg: 'EdDSA', kid: 'ed' }, { aud: [audience, 'urn:x'] });
    expect((await v.verify(edToken)).payload.sub).toBe('acme/alice');
    const typed = await sign(es, { alg: 'ES256', kid: 'es', typ: 'application/AT+JWT' });
    expect((await v.verify(typed)).payload.sub).toBe('acme/alice');
  });

  it('serves a repeated token from the cache', async () => {
    const v = verifier();
    const token = await sign(es, { alg: 'ES256', kid: 'es' });
    const first = await v.verify(token);
    expect(await v.verify(token)).toBe(first);
    expect(v.cacheStats()).toMatchObject({ hits: 1, size: 1 });
  });

  const unsigned = (header: object, claims: object) => `${b64(header)}.${b64(claims)}.`;
  const claims = { iss: issuer, aud: audience, sub: 'acme/alice', org: 'acme', exp: at + 300 };

  it.each<[string, () => Promise<string> | string, string]>([
    [
      'alg none',
      () => unsigned({ alg: 'none', typ: 'at+jwt' }, claims),
      'ERR_TOKEN_ALGORITHM_NOT_ALLOWED',
    ],
    [
      'HS256 keyed with the published public key',
      () => {
        const pem = createPublicKey({ key: es.jwk, format: 'jwk' }).export({
          type: 'spki',
          format: 'pem',
        });
        return sign({ privateKey: Buffer.from(pem) }, { alg: 'HS256', kid: 'es' });
      },
      'ERR_TOKEN_ALGORITHM_NOT_ALLOWED',
    ],
    [
      'RS256 from a published RSA key',
      () => sign(rs, { alg: 'RS256', kid: 'rs' }),
      'ERR_TOKEN_ALGORITHM_NOT_ALLOWED',
    ],
    [
      'ES256 naming the EdDSA key',
      () => sign(es, { alg: 'ES256', kid: 'ed' }),
      'ERR_TOKEN_KEY_NOT_FOUND',
    ],
    ['an unknown kid', () => sign(es, { alg: 'ES256', kid: 'nope' }), 'ERR_TOKEN_KEY_NOT_FOUND'],
    [
      'a key not in the set',
      () => sign(other, { alg: 'ES256', kid: 'es' }),
      'ERR_TOKEN_SIGNATURE_INVALID',
    ],
    [
      'typ JWT',
      () => sign(es, { alg: 'ES256', kid: 'es', typ: 'JWT' }),
      'ERR_TOKEN_TYPE_NOT_ALLOWED',
    ],
    [
      'no typ',
      () => sign(es, { alg: 'ES256', kid: 'es', typ: undefined }),
      'ERR_TOKEN_TYPE_NOT_ALLOWED',
    ],
    [
      'a crit header',
      () =>
        signRaw(es, { alg: 'ES256', kid: 'es', typ: 'at+jwt', crit: ['b64'], b64: true }, claims),
      'ERR_TOKEN_MALFORMED',
    ],
    [
      'a wrong iss',
      () => sign(es, { alg: 'ES256', kid: 'es' }, { iss: 'https://evil' }),
      'ERR_TOKEN_CLAIM_INVALID',
    ],
    [
      'a wrong aud',
      () => sign(es, { alg: 'ES256', kid: 'es' }, { aud: 'urn:bulwark:audit' }),
      'ERR_TOKEN_CLAIM_INVALID',
    ],
    [
      'no aud',
      () => sign(es, { alg: 'ES256', kid: 'es' }, { aud: undefined }),
      'ERR_TOKEN_CLAIM_INVALID',
    ],
    [
      'no exp',
      () => sign(es, { alg: 'ES256', kid: 'es' }, { exp: undefined }),
      'ERR_TOKEN_CLAIM_INVALID',
    ],
    [
      'no sub',
      () => sign(es, { alg: 'ES256', kid: 'es' }, { sub: undefined }),
      'ERR_TOKEN_CLAIM_INVALID',
    ],
    [
      'a string exp',
      () => sign(es, { alg: 'ES256', kid: 'es' }, { exp: String(at + 300) as never }),
      'ERR_TOKEN_CLAIM_INVALID',
    ],
    [
      'an expired token',
      () => sign(es, { alg: 'ES256', kid: 'es' }, { exp: at - 31 }),
      'ERR_TOKEN_EXPIRED',
    ],
    [
      'a not-yet-valid token',
      () => sign(es, { alg: 'ES256', kid: 'es' }, { nbf: at + 31 }),
      'ERR_TOKEN_NOT_YET_VALID',
    ],
    [
      'two segments',
      async () => (await sign(es, { alg: 'ES256', kid: 'es' })).split('.').slice(0, 2).join('.'),
      'ERR_TOKEN_MALFORMED',
    ],
    [
      'padding',
      async () => `${await sign(es, { alg: 'ES256', kid: 'es' })}==`,
      'ERR_TOKEN_MALFORMED',
    ],
    ['an oversized token', () => `${'a'.repeat(20_000)}.b.c`, 'ERR_TOKEN_MALFORMED'],
  ])('refuses %s', async (_name, make, code) => {
    const v = verifier();
    await expect(v.verify(await make())).rejects.toMatchObject({ code });
    expect(v.cacheStats().size).toBe(0);
  });

  it('refuses a payload swapped under a genuine signature, and caches neither', async () => {
    const v = verifier();
    const [h, , s] = (await sign(es, { alg: 'ES256', kid: 'es' })).split('.');
    const forged = `${h}.${b64({ ...claims, sub: 'acme/admin' })}.${s}`;
    await expect(v.verify(forged)).rejects.toMatchObject({ code: 'ERR_TOKEN_SIGNATURE_INVALID' });
    await expect(v.verify(forged)).rejects.toMatchObject({ code: 'ERR_TOKEN_SIGNATURE_INVALID' });
    expect(v.cacheStats()).toMatchObject({ size: 0, hits: 0 });
  });

  it('checks signatures on the thread pool when asked, with the same verdicts', async () => {
    const v = verifier({ offThread: true });
    const genuine = await sign(es, { alg: 'ES256', kid: 'es' });
    expect((await v.verify(genuine)).payload.sub).toBe('acme/alice');
    expect((await v.verify(await sign(ed, { alg: 'EdDSA', kid: 'ed' }))).payload.sub).toBe(
      'acme/alice',
    );
    const [h, , s] = genuine.split('.');
    const forged = `${h}.${b64({ ...claims, sub: 'acme/admin' })}.${s}`;
    await expect(v.verify(forged)).rejects.toMatchObject({ code: 'ERR_TOKEN_SIGNATURE_INVALID' });
    expect(v.cacheStats().size).toBe(2);
  });

  it('refuses every one-character change of a cached genuine token', async () => {
    const v = verifier();
    const token = await sign(es, { alg: 'ES256', kid: 'es' });
    await v.verify(token);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.';
    await fc.assert(
      fc.asyncProperty(
        fc.nat(token.length - 1),
        fc.constantFrom(...alphabet),
        async (index, char) => {
          fc.pre(token[index] !== char);
          const tampered = token.slice(0, index) + char + token.slice(index + 1);
          await expect(v.verify(tampered)).rejects.toHaveProperty('code');
        },
      ),
      { numRuns: 150 },
    );
    // Including the last signature character, whose spare bits base64 decoders may ignore.
    const last = token.at(-1)!;
    const flipped =
      token.slice(0, -1) + (last === 'A' ? 'B' : String.fromCharCode(last.charCodeAt(0) ^ 1));
    await expect(v.verify(flipped)).rejects.toHaveProperty('code');
    expect(v.cacheStats().size).toBe(1);
    expect((await v.verify(token)).payload.sub).toBe('acme/alice');
  });

  it('refuses a cached token once it has expired', async () => {
    const v = verifier();
    const token = await sign(es, { alg: 'ES256', kid: 'es' }, { exp: at + 60 });
    await v.verify(token);
    clock.ms = start + 90_000;
    await expect(v.verify(token)).rejects.toMatchObject({ code: 'ERR_TOKEN_EXPIRED' });
  });

  it('refuses a cached token once its key has left the key set', async () => {
    const v = verifier();
    const token = await sign(es, { alg: 'ES256', kid: 'es' });
    await v.verify(token);
    publish(ed);
    await expect(v.verify(token)).rejects.toMatchObject({ code: 'ERR_TOKEN_KEY_NOT_FOUND' });
    // Another key under the same kid is not the key that verified it.
    publish(other, ed);
    await expect(v.verify(token)).rejects.toMatchObject({ code: 'ERR_TOKEN_SIGNATURE_INVALID' });
  });

  it('keeps honouring a cached token when the same keys are fetched again', async () => {
    const v = verifier();
    const token = await sign(es, { alg: 'ES256', kid: 'es' });
    await v.verify(token);
    publish(ed, es); // a reload: new key objects, same key material
    await v.verify(token);
    expect(v.cacheStats().hits).toBe(1);
  });

  it('refuses a token that is only valid from a later time, also after caching', async () => {
    const v = verifier();
    const token = await sign(es, { alg: 'ES256', kid: 'es' }, { nbf: at });
    await v.verify(token);
    clock.ms = start - 60_000;
    await expect(v.verify(token)).rejects.toMatchObject({ code: 'ERR_TOKEN_NOT_YET_VALID' });
  });

  it('stays correct when the cache is full', async () => {
    const v = verifier({ cacheSize: 2 });
    const tokens = await Promise.all(
      ['a', 'b', 'c'].map((s) => sign(es, { alg: 'ES256', kid: 'es' }, { sub: `acme/${s}` })),
    );
    for (const t of tokens) await v.verify(t);
    expect(v.cacheStats()).toMatchObject({ size: 2, evictions: 1 });
    for (const [i, t] of tokens.entries()) {
      expect((await v.verify(t)).payload.sub).toBe(`acme/${'abc'[i]}`);
    }
    const evicted = tokens[0]!;
    const [h, , s] = evicted.split('.');
    await expect(
      v.verify(`${h}.${b64({ ...claims, sub: 'acme/admin' })}.${s}`),
    ).rejects.toMatchObject({ code: 'ERR_TOKEN_SIGNATURE_INVALID' });
  });

  it('tries every key when several match the header', async () => {
    publish(other, es);
    const v = verifier();
    const token = await sign(es, { alg: 'ES256', kid: 'es' });
    expect((await v.verify(token)).payload.sub).toBe('acme/alice');
    expect((await v.verify(token)).payload.sub).toBe('acme/alice');
    expect(v.cacheStats().hits).toBe(1);
  });

  it('reports an unreadable key set, and rejects bad options by name', async () => {
    const v = createJwtVerifier({
      issuer,
      audience,
      keys: async () => {
        throw new Error('connect ECONNREFUSED');
      },
    });
    await expect(v.verify(await sign(es, { alg: 'ES256', kid: 'es' }))).rejects.toMatchObject({
      code: 'ERR_TOKEN_KEYS_UNAVAILABLE',
      message: 'the key set could not be read',
    });
    expect(() => verifier({ algorithms: ['HS256' as never] })).toThrow('algorithms');
    expect(() => verifier({ issuer: '' })).toThrow('issuer');
    expect(() => createJwtVerifier({ issuer, audience, keys: {} as never })).toThrow('keys');
  });

  it('uses a KeyObject or JWK key source as well', async () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const token = await sign({ privateKey: pair.privateKey as never }, { alg: 'ES256', kid: 'k' });
    const viaKeyObject = createJwtVerifier({
      issuer,
      audience,
      keys: async () => pair.publicKey,
      now: () => new Date(start),
    });
    expect((await viaKeyObject.verify(token)).payload.sub).toBe('acme/alice');
    const jwk = pair.publicKey.export({ format: 'jwk' });
    const viaJwk = createJwtVerifier({
      issuer,
      audience,
      keys: async () => jwk as never,
      now: () => new Date(start),
    });
    expect((await viaJwk.verify(token)).payload.sub).toBe('acme/alice');
    // A private key is never used to verify.
    const viaPrivate = createJwtVerifier({
      issuer,
      audience,
      keys: async () => pair.privateKey,
      now: () => new Date(start),
    });
    await expect(viaPrivate.verify(token)).rejects.toMatchObject({
      code: 'ERR_TOKEN_KEY_NOT_FOUND',
    });
  });
});
