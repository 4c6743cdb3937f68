import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import type { TrustedIssuer } from './options.ts';
import { createSubjectTokenVerifier } from './subject-tokens.ts';

const issuer = 'https://idp.acme.test';
const start = Date.parse('2026-05-01T08:00:00Z');
const at = start / 1000;

describe('subject token verifier', () => {
  let privateKey: CryptoKey;
  let jwks: { keys: object[] };
  const clock = { ms: start };
  const calls: string[] = [];
  const fetchFn = (async (input: string | URL) => {
    const url = String(input);
    calls.push(url);
    const body = url.endsWith('/.well-known/openid-configuration')
      ? { issuer, jwks_uri: `${issuer}/jwks` }
      : jwks;
    return new Response(JSON.stringify(body), { headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
  const acme: TrustedIssuer = { issuer, audience: 'https://bulwark.acme.example' };
  // Another organisation trusting the same issuer, for another audience.
  const globex: TrustedIssuer = { issuer, audience: 'https://bulwark.globex.example' };
  const header = { alg: 'ES256', kid: 'k1' } as const;

  const sign = (claims: JWTPayload = {}) =>
    new SignJWT({ sub: 'alice', aud: acme.audience, iss: issuer, exp: at + 300, ...claims })
      .setProtectedHeader(header)
      .sign(privateKey);

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    privateKey = pair.privateKey;
    jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' }] };
  });
  beforeEach(() => {
    clock.ms = start;
    calls.length = 0;
  });
  const verifier = () => createSubjectTokenVerifier({ fetchFn, now: () => clock.ms });

  it('verifies, finds the JWKS once by discovery, and remembers the verified token', async () => {
    const subjects = verifier();
    const token = await sign();
    const first = await subjects.verify(acme, ['ES256'], token);
    expect(first.sub).toBe('alice');
    expect(Object.isFrozen(first)).toBe(true);
    expect(await subjects.verify(acme, ['ES256'], token)).toBe(first);
    expect(await subjects.verify(acme, ['ES256'], await sign({ sub: 'bob' }))).toMatchObject({
      sub: 'bob',
    });
    expect(calls.filter((u) => u.includes('openid-configuration'))).toHaveLength(1);
    expect(calls.filter((u) => u.endsWith('/jwks'))).toHaveLength(1);
  });

  it('refuses a one-character change of a remembered token', async () => {
    const subjects = verifier();
    const token = await sign();
    await subjects.verify(acme, ['ES256'], token);
    const [h, p, s] = token.split('.') as [string, string, string];
    const swap = (x: string, i: number) =>
      x.slice(0, i) + (x[i] === 'A' ? 'B' : 'A') + x.slice(i + 1);
    for (const tampered of [`${h}.${swap(p, 12)}.${s}`, `${h}.${p}.${swap(s, 5)}`]) {
      await expect(subjects.verify(acme, ['ES256'], tampered)).rejects.toThrow();
    }
  });

  it("never lets one organisation's verdict stand for another's audience rule", async () => {
    const subjects = verifier();
    const token = await sign();
    await subjects.verify(acme, ['ES256'], token);
    await expect(subjects.verify(globex, ['ES256'], token)).rejects.toMatchObject({
      code: 'ERR_TOKEN_CLAIM_INVALID',
      claim: 'aud',
    });
  });

  it('refuses a remembered token once it has expired', async () => {
    const subjects = verifier();
    const token = await sign({ exp: at + 60 });
    await subjects.verify(acme, ['ES256'], token);
    clock.ms = start + 91_000;
    await expect(subjects.verify(acme, ['ES256'], token)).rejects.toMatchObject({
      code: 'ERR_TOKEN_EXPIRED',
    });
  });

  it('remembers no refusal', async () => {
    const subjects = verifier();
    const token = await sign({ exp: at - 120 });
    await expect(subjects.verify(acme, ['ES256'], token)).rejects.toMatchObject({
      code: 'ERR_TOKEN_EXPIRED',
    });
    clock.ms = start - 300_000;
    // Valid at this earlier time, so it is verified again (and passes) rather than refused.
    expect((await subjects.verify(acme, ['ES256'], token)).sub).toBe('alice');
    await expect(subjects.verify(acme, ['RS256'], await sign())).rejects.toMatchObject({
      code: 'ERR_TOKEN_ALGORITHM_NOT_ALLOWED',
    });
  });

  it.each(['RS256', 'PS256', 'ES384', 'EdDSA'] as const)(
    'verifies a partner token signed with %s (node:crypto, no WebCrypto)',
    async (alg) => {
      const pair = await generateKeyPair(alg, { extractable: true });
      const saved = jwks;
      jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), kid: `k-${alg}`, alg }] };
      try {
        const token = await new SignJWT({
          sub: 'carol',
          aud: acme.audience,
          iss: issuer,
          exp: at + 300,
        })
          .setProtectedHeader({ alg, kid: `k-${alg}`, typ: 'JWT' })
          .sign(pair.privateKey);
        const subjects = verifier();
        expect((await subjects.verify(acme, [alg], token)).sub).toBe('carol');
        // The same token is refused where its algorithm is not allowed.
        await expect(subjects.verify(acme, ['ES256'], token)).rejects.toMatchObject({
          code: 'ERR_TOKEN_ALGORITHM_NOT_ALLOWED',
        });
      } finally {
        jwks = saved;
      }
    },
  );

  it('refuses a token whose key set holds no key for its algorithm', async () => {
    const rsa = await generateKeyPair('RS256', { extractable: true });
    const token = await new SignJWT({
      sub: 'mallory',
      aud: acme.audience,
      iss: issuer,
      exp: at + 300,
    })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .sign(rsa.privateKey);
    // kid k1 is the issuer's ES256 key: it cannot serve RS256, whatever the header says.
    await expect(verifier().verify(acme, ['RS256', 'ES256'], token)).rejects.toMatchObject({
      code: 'ERR_TOKEN_KEY_NOT_FOUND',
    });
  });
});
