import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';

type KeyLike = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
import { errorCode } from '../../../mesh/errors.ts';
import { createTokenGuard, requireScope } from './token-guard.ts';

const ISSUER = 'https://identity.bulwark.local';
const NOW = new Date('2026-01-01T12:00:00Z');
const now = () => NOW;
let sign: (
  claims: Record<string, unknown>,
  opts?: { typ?: string; alg?: string; key?: KeyLike },
) => Promise<string>;
let guard: ReturnType<typeof createTokenGuard>;
let otherKey: KeyLike;
const peer = { address: '127.0.0.1:5000' };

beforeAll(async () => {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  otherKey = (await generateKeyPair('ES256')).privateKey;
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  guard = createTokenGuard({ issuer: ISSUER, keys: createLocalJWKSet({ keys: [jwk] }), now });
  sign = (claims, opts = {}) =>
    new SignJWT({
      org: 'acme',
      scope: 'model:infer',
      client_id: 'app',
      roles: ['analyst'],
      iss: ISSUER,
      aud: 'urn:bulwark:inference',
      sub: 'acme/alice',
      iat: NOW.getTime() / 1000 - 10,
      exp: NOW.getTime() / 1000 + 300,
      jti: 'j1',
      ...claims,
    })
      .setProtectedHeader({ alg: opts.alg ?? 'ES256', typ: opts.typ ?? 'at+jwt', kid: 'k1' })
      .sign(opts.key ?? privateKey);
});

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return `${errorCode(err)}: ${(err as Error).message}`;
  }
  throw new Error('expected a refusal');
}

test('accepts a valid token and reads the caller', async () => {
  const caller = await guard.verify(`Bearer ${await sign({})}`, peer);
  expect(caller).toMatchObject({
    subject: 'acme/alice',
    org: 'acme',
    scopes: ['model:infer'],
    clientId: 'app',
    jti: 'j1',
  });
  expect(caller.certificateBound).toBe(false);
});

test('refuses a missing or malformed authorization header', async () => {
  expect(await refusal(guard.verify(undefined, peer))).toBe(
    'ERR_INFERENCE_UNAUTHENTICATED: missing or malformed bearer token',
  );
  expect(await refusal(guard.verify('Basic dXNlcjpwYXNz', peer))).toMatch(/malformed/);
});

test('refuses an expired token', async () => {
  const token = await new SignJWT({ org: 'acme' })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' })
    .setIssuer(ISSUER)
    .setAudience('urn:bulwark:inference')
    .setSubject('acme/alice')
    .setIssuedAt(NOW.getTime() / 1000 - 900)
    .setExpirationTime(NOW.getTime() / 1000 - 600)
    .sign(otherKey);
  // Signed by an unknown key: the signature check comes first.
  expect(await refusal(guard.verify(`Bearer ${token}`, peer))).toMatch(/UNAUTHENTICATED/);
  const expired = await sign({ exp: NOW.getTime() / 1000 - 60 });
  expect(await refusal(guard.verify(`Bearer ${expired}`, peer))).toBe(
    'ERR_INFERENCE_UNAUTHENTICATED: token has expired',
  );
});

test('refuses a token minted for another audience', async () => {
  const token = await sign({ aud: 'urn:bulwark:audit' });
  expect(await refusal(guard.verify(`Bearer ${token}`, peer))).toBe(
    'ERR_INFERENCE_UNAUTHENTICATED: token audience is not urn:bulwark:inference',
  );
});

test('refuses a foreign issuer, a wrong typ and a forged signature', async () => {
  expect(
    await refusal(guard.verify(`Bearer ${await sign({ iss: 'https://evil' })}`, peer)),
  ).toMatch(/issuer/);
  expect(await refusal(guard.verify(`Bearer ${await sign({}, { typ: 'JWT' })}`, peer))).toMatch(
    /at\+jwt/,
  );
  expect(await refusal(guard.verify(`Bearer ${await sign({}, { key: otherKey })}`, peer))).toBe(
    'ERR_INFERENCE_UNAUTHENTICATED: token signature is invalid',
  );
});

test('refuses a token bound to another certificate, and an unbound token from a partner certificate', async () => {
  const bound = await sign({ cnf: { 'x5t#S256': 'thumb-A' } });
  const partner = {
    address: 'x',
    spiffeId: 'spiffe://bulwark.local/partner/acme/app',
    certificateThumbprint: 'thumb-B',
  };
  expect(await refusal(guard.verify(`Bearer ${bound}`, partner))).toBe(
    'ERR_INFERENCE_UNAUTHENTICATED: token is bound to a different client certificate',
  );
  expect(await refusal(guard.verify(`Bearer ${bound}`, peer))).toMatch(
    /different client certificate/,
  );
  expect(await refusal(guard.verify(`Bearer ${await sign({})}`, partner))).toBe(
    'ERR_INFERENCE_UNAUTHENTICATED: this client must use a token bound to its certificate (RFC 8705)',
  );
  const ok = await guard.verify(`Bearer ${bound}`, {
    ...partner,
    certificateThumbprint: 'thumb-A',
  });
  expect(ok.certificateBound).toBe(true);
  // The gateway (a mesh workload) forwards end users' unbound tokens.
  const gateway = {
    address: 'x',
    spiffeId: 'spiffe://bulwark.local/svc/gateway',
    certificateThumbprint: 'g',
  };
  expect((await guard.verify(`Bearer ${await sign({})}`, gateway)).subject).toBe('acme/alice');
});

test('refuses a subject outside its organisation and a missing scope', async () => {
  expect(await refusal(guard.verify(`Bearer ${await sign({ org: 'other' })}`, peer))).toMatch(
    /subject must be/,
  );
  const caller = await guard.verify(`Bearer ${await sign({ scope: 'audit:read' })}`, peer);
  expect(() => requireScope(caller, 'model:infer')).toThrow('token lacks the model:infer scope');
});

test('a cached token is still refused once it expires', async () => {
  let now = new Date('2026-01-01T12:00:00Z');
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
  const g = createTokenGuard({
    issuer: ISSUER,
    keys: createLocalJWKSet({ keys: [jwk] }),
    now: () => now,
    clockToleranceSec: 0,
  });
  const token = await new SignJWT({
    org: 'acme',
    sub: 'acme/alice',
    iss: ISSUER,
    aud: 'urn:bulwark:inference',
    iat: now.getTime() / 1000,
    exp: now.getTime() / 1000 + 60,
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' })
    .sign(privateKey);
  expect((await g.verify(`Bearer ${token}`, peer)).subject).toBe('acme/alice');
  expect((await g.verify(`Bearer ${token}`, peer)).subject).toBe('acme/alice');
  now = new Date(now.getTime() + 61_000);
  expect(await refusal(g.verify(`Bearer ${token}`, peer))).toBe(
    'ERR_INFERENCE_UNAUTHENTICATED: token has expired',
  );
});

test('a remembered token is refused once its signing key is no longer published', async () => {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'k2', alg: 'ES256', use: 'sig' };
  let published: JWK[] = [jwk];
  const rotating = createTokenGuard({
    issuer: ISSUER,
    keys: (header, token) => createLocalJWKSet({ keys: published })(header, token),
    now,
  });
  const token = await new SignJWT({ org: 'acme', scope: 'model:infer' })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k2' })
    .setIssuer(ISSUER)
    .setAudience('urn:bulwark:inference')
    .setSubject('acme/alice')
    .setIssuedAt(NOW.getTime() / 1000 - 10)
    .setExpirationTime(NOW.getTime() / 1000 + 300)
    .sign(privateKey);
  expect((await rotating.verify(`Bearer ${token}`, peer)).subject).toBe('acme/alice');
  // Verified once and remembered; the broker then retires the key.
  published = [];
  expect(await refusal(rotating.verify(`Bearer ${token}`, peer))).toMatch(
    /^ERR_INFERENCE_UNAUTHENTICATED: token signing key is unknown/,
  );
  // One changed byte of a remembered token is a different token, checked in full.
  published = [jwk];
  await rotating.verify(`Bearer ${token}`, peer);
  const last = token.at(-2) === 'A' ? 'B' : 'A';
  const tampered = `${token.slice(0, -2)}${last}${token.at(-1)}`;
  expect(await refusal(rotating.verify(`Bearer ${tampered}`, peer))).toMatch(
    /UNAUTHENTICATED: token (signature is invalid|is invalid)/,
  );
});
