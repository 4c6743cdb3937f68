import { createHash, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { createLocalJWKSet, importJWK, jwtVerify, SignJWT } from 'jose';
import { ACME_EXCHANGE_AUDIENCE, startHarness, type Harness } from '../identity/testing/harness.ts';
import { clientAssertion, postForm } from '../identity/testing/clients.ts';
import { TOKEN_EXCHANGE_GRANT } from '../identity/index.ts';

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});
afterEach(() => {
  h.clock.now = Date.now();
});

/** A real token from acme's own IdP, as a partner back-end service would hold. */
async function acmeServiceToken(audience = ACME_EXCHANGE_AUDIENCE): Promise<string> {
  const basic = Buffer.from(`acme-backend:${h.secrets.acmeBackend}`).toString('base64');
  const { status, body } = await postForm(
    h.fetch,
    `${h.acme.issuer}/token`,
    { grant_type: 'client_credentials', resource: audience },
    { authorization: `Basic ${basic}` },
  );
  expect(status).toBe(200);
  return String(body.access_token);
}

async function exchange(subjectToken: string, extra: Record<string, string> = {}) {
  return postForm(h.fetch, `${h.broker.issuer}/token`, {
    grant_type: TOKEN_EXCHANGE_GRANT,
    client_id: 'acme-gateway',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await clientAssertion('acme-gateway', h.gatewayKey, h.broker.issuer),
    subject_token: subjectToken,
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    resource: 'urn:bulwark:inference',
    scope: 'model:infer',
    ...extra,
  });
}

function lastExchangeRefusal() {
  return h.audit.events
    .filter((e) => e.action === 'token.exchange' && e.outcome === 'failure')
    .at(-1);
}

async function brokerJwks() {
  return createLocalJWKSet(
    (await (await h.fetch(`${h.broker.issuer}/jwks`)).json()) as { keys: never[] },
  );
}

test('a partner token from the trusted issuer with the configured audience becomes a mesh token', async () => {
  const subject = await acmeServiceToken();
  const { status, body } = await exchange(subject);
  expect(status).toBe(200);
  expect(body.issued_token_type).toBe('urn:ietf:params:oauth:token-type:access_token');
  const { payload, protectedHeader } = await jwtVerify(
    String(body.access_token),
    await brokerJwks(),
    {
      issuer: h.broker.issuer,
      audience: 'urn:bulwark:inference',
    },
  );
  expect(protectedHeader.typ).toBe('at+jwt');
  expect(payload).toMatchObject({
    sub: 'acme/acme-backend',
    org: 'acme',
    client_id: 'acme-gateway',
    scope: 'model:infer',
  });
  expect(payload.roles).toEqual(['member']);
  const ok = h.audit.events.filter((e) => e.action === 'token.exchange' && e.outcome === 'success');
  expect(ok.at(-1)?.actor.sub).toBe('acme/acme-backend');
  const recorded = JSON.stringify(h.audit.events);
  expect(recorded).not.toContain(subject);
  expect(recorded).not.toContain(String(body.access_token));
});

test('an mTLS client gets a certificate-bound exchanged token', async () => {
  const { status, body } = await postForm(h.mtlsFetch, `${h.broker.issuer}/token`, {
    grant_type: TOKEN_EXCHANGE_GRANT,
    client_id: 'acme-batch',
    subject_token: await acmeServiceToken(),
    subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    resource: 'urn:bulwark:inference',
  });
  expect(status).toBe(200);
  const { payload } = await jwtVerify(String(body.access_token), await brokerJwks());
  const thumbprint = createHash('sha256')
    .update(new X509Certificate(h.partnerCert.cert).raw)
    .digest('base64url');
  expect(payload.cnf).toEqual({ 'x5t#S256': thumbprint });
});

test('refused: a token the partner IdP minted for another audience (Keycloak #51004)', async () => {
  const { status, body } = await exchange(await acmeServiceToken('urn:acme:payroll'));
  expect(status).toBe(400);
  expect(body.error).toBe('invalid_grant');
  expect(lastExchangeRefusal()?.reason).toBe('subject token audience not accepted');
});

test('refused: a token from an issuer the organisation does not trust', async () => {
  const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const forged = await new SignJWT({ sub: 'intruder' })
    .setProtectedHeader({ alg: 'ES256' })
    .setIssuer(h.globex.issuer)
    .setAudience(ACME_EXCHANGE_AUDIENCE)
    .setExpirationTime('5m')
    .sign(attacker);
  const { body } = await exchange(forged);
  expect(body.error).toBe('invalid_grant');
  expect(lastExchangeRefusal()?.reason).toBe('subject token issuer not trusted');
});

test('refused: the trusted issuer name on a token signed by another key', async () => {
  const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const forged = await new SignJWT({ sub: 'intruder' })
    .setProtectedHeader({ alg: 'ES256', kid: String(h.acmeSigningJwk.kid) })
    .setIssuer(h.acme.issuer)
    .setAudience(ACME_EXCHANGE_AUDIENCE)
    .setExpirationTime('5m')
    .sign(attacker);
  const { body } = await exchange(forged);
  expect(body.error).toBe('invalid_grant');
  expect(lastExchangeRefusal()?.reason).toMatch(/signature|invalid/);
});

test('refused: alg none', async () => {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: h.acme.issuer, aud: ACME_EXCHANGE_AUDIENCE, sub: 'intruder', iat: now, exp: now + 300 })}.`;
  const { body } = await exchange(unsigned);
  expect(body.error).toBe('invalid_grant');
  expect(lastExchangeRefusal()?.reason).toBe('subject token algorithm not allowed');
});

test('refused: HS256 signed with the issuer public key as the HMAC secret', async () => {
  const publicJwk = { kty: 'EC', crv: 'P-256', x: h.acmeSigningJwk.x, y: h.acmeSigningJwk.y };
  const pem = createPublicKey({ key: publicJwk as never, format: 'jwk' }).export({
    type: 'spki',
    format: 'pem',
  });
  for (const secret of [Buffer.from(String(pem)), Buffer.from(JSON.stringify(publicJwk))]) {
    const forged = await new SignJWT({ sub: 'intruder' })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(h.acme.issuer)
      .setAudience(ACME_EXCHANGE_AUDIENCE)
      .setExpirationTime('5m')
      .sign(secret);
    const { body } = await exchange(forged);
    expect(body.error).toBe('invalid_grant');
    expect(lastExchangeRefusal()?.reason).toBe('subject token algorithm not allowed');
  }
});

test('refused: an expired partner token (signed by the real issuer key)', async () => {
  const key = await importJWK(h.acmeSigningJwk as never, 'ES256');
  const expired = await new SignJWT({ sub: 'acme-backend' })
    .setProtectedHeader({ alg: 'ES256', kid: String(h.acmeSigningJwk.kid) })
    .setIssuer(h.acme.issuer)
    .setAudience(ACME_EXCHANGE_AUDIENCE)
    .setIssuedAt(Math.floor(Date.now() / 1000) - 900)
    .setExpirationTime(Math.floor(Date.now() / 1000) - 600)
    .sign(key);
  const { body } = await exchange(expired);
  expect(body.error).toBe('invalid_grant');
  expect(lastExchangeRefusal()?.reason).toBe('subject token expired');
});

test('refused: a real partner token presented after it expired (broker clock moves on)', async () => {
  const subject = await acmeServiceToken();
  h.clock.now = Date.now() + 10 * 60_000;
  const { body } = await exchange(subject);
  expect(body.error).toBe('invalid_grant');
  expect(lastExchangeRefusal()?.reason).toBe('subject token expired');
});

test('refused: unknown resource → invalid_target', async () => {
  const { body } = await exchange(await acmeServiceToken(), { resource: 'urn:bulwark:elsewhere' });
  expect(body.error).toBe('invalid_target');
});

test('refused: a scope the resource does not offer → invalid_scope', async () => {
  const { body } = await exchange(await acmeServiceToken(), { scope: 'audit:read' });
  expect(body.error).toBe('invalid_scope');
});

test('refused: delegation (actor_token) is not silently ignored', async () => {
  const subject = await acmeServiceToken();
  const { body } = await exchange(subject, {
    actor_token: subject,
    actor_token_type: 'urn:ietf:params:oauth:token-type:jwt',
  });
  expect(body.error).toBe('invalid_request');
  expect(lastExchangeRefusal()?.reason).toBe('delegation not supported');
});

test('refused: not a JWT at all', async () => {
  const { body } = await exchange('not-a-token');
  expect(body.error).toBe('invalid_grant');
});
