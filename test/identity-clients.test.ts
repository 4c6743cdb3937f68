import { createHash, X509Certificate } from 'node:crypto';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { startHarness, type Harness } from '../identity/testing/harness.ts';
import { clientAssertion, postForm } from '../identity/testing/clients.ts';

let h: Harness;
let tokenUrl: string;

beforeAll(async () => {
  h = await startHarness();
  tokenUrl = `${h.broker.issuer}/token`;
});
afterAll(async () => {
  await h.close();
});

async function jwks() {
  const res = await h.fetch(`${h.broker.issuer}/jwks`);
  return createLocalJWKSet((await res.json()) as { keys: never[] });
}

async function gatewayToken(extra: Record<string, string>) {
  return postForm(h.fetch, tokenUrl, {
    grant_type: 'client_credentials',
    client_id: 'acme-gateway',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await clientAssertion('acme-gateway', h.gatewayKey, h.broker.issuer),
    ...extra,
  });
}

test('discovery names every endpoint the mesh uses and only ES256', async () => {
  const res = await h.fetch(`${h.broker.issuer}/.well-known/openid-configuration`);
  const d = (await res.json()) as Record<string, unknown>;
  expect(d.issuer).toBe(h.broker.issuer);
  for (const k of [
    'authorization_endpoint',
    'token_endpoint',
    'jwks_uri',
    'device_authorization_endpoint',
    'revocation_endpoint',
    'introspection_endpoint',
  ]) {
    expect(typeof d[k]).toBe('string');
  }
  expect(d.code_challenge_methods_supported).toEqual(['S256']);
  expect(d.id_token_signing_alg_values_supported).toEqual(['ES256']);
  expect(d.tls_client_certificate_bound_access_tokens).toBe(true);
});

test('client credentials with private_key_jwt gives an RFC 9068 token for one audience', async () => {
  const { status, body } = await gatewayToken({
    resource: 'urn:bulwark:inference',
    scope: 'model:infer',
  });
  expect(status).toBe(200);
  const token = String(body.access_token);
  expect(decodeProtectedHeader(token)).toMatchObject({ typ: 'at+jwt', alg: 'ES256' });
  const { payload } = await jwtVerify(token, await jwks(), {
    issuer: h.broker.issuer,
    audience: 'urn:bulwark:inference',
    typ: 'at+jwt',
  });
  expect(payload).toMatchObject({
    sub: 'acme/acme-gateway',
    org: 'acme',
    roles: ['service'],
    client_id: 'acme-gateway',
    scope: 'model:infer',
  });
  expect(typeof payload.jti).toBe('string');
  expect(payload.exp! - payload.iat!).toBe(300);
  expect(payload.cnf).toBeUndefined();
  expect(
    h.audit.events.some((e) => e.action === 'token.issue' && e.target?.tokenId === payload.jti),
  ).toBe(true);
  expect(JSON.stringify(h.audit.events)).not.toContain(token);
});

test('mTLS client authentication gives a certificate-bound token (cnf.x5t#S256)', async () => {
  const { status, body } = await postForm(h.mtlsFetch, tokenUrl, {
    grant_type: 'client_credentials',
    client_id: 'acme-batch',
    resource: 'urn:bulwark:inference',
    scope: 'model:infer',
  });
  expect(status).toBe(200);
  const { payload } = await jwtVerify(String(body.access_token), await jwks(), {
    audience: 'urn:bulwark:inference',
  });
  const expected = createHash('sha256')
    .update(new X509Certificate(h.partnerCert.cert).raw)
    .digest('base64url');
  expect(payload.cnf).toEqual({ 'x5t#S256': expected });
  expect(payload.sub).toBe('acme/acme-batch');
});

test('refused: tls_client_auth client without a certificate', async () => {
  const { status, body } = await postForm(h.fetch, tokenUrl, {
    grant_type: 'client_credentials',
    client_id: 'acme-batch',
    resource: 'urn:bulwark:inference',
  });
  expect(status).toBe(401);
  expect(body.error).toBe('invalid_client');
});

test('refused: tls_client_auth with a certificate for another identity', async () => {
  const other = await h.ca.client('spiffe://bulwark.local/partner/globex/batch');
  const { createTlsFetch } = await import('../identity/tls-fetch.ts');
  const fetchOther = createTlsFetch({ ca: h.ca.cert, cert: other.cert, key: other.key });
  const { status, body } = await postForm(fetchOther, tokenUrl, {
    grant_type: 'client_credentials',
    client_id: 'acme-batch',
    resource: 'urn:bulwark:inference',
  });
  expect(status).toBe(401);
  expect(body.error).toBe('invalid_client');
});

test('refused: the right SPIFFE ID on a certificate from another CA', async () => {
  const { createTestCa } = await import('../identity/testing/tls.ts');
  const rogueCa = await createTestCa();
  const forged = await rogueCa.client('spiffe://bulwark.local/partner/acme/batch');
  const { createTlsFetch } = await import('../identity/tls-fetch.ts');
  const fetchForged = createTlsFetch({ ca: h.ca.cert, cert: forged.cert, key: forged.key });
  const { status, body } = await postForm(fetchForged, tokenUrl, {
    grant_type: 'client_credentials',
    client_id: 'acme-batch',
    resource: 'urn:bulwark:inference',
  });
  expect(status).toBe(401);
  expect(body.error).toBe('invalid_client');
});

test('refused: unknown resource → invalid_target', async () => {
  const { status, body } = await gatewayToken({
    resource: 'urn:bulwark:unknown',
    scope: 'model:infer',
  });
  expect(status).toBe(400);
  expect(body.error).toBe('invalid_target');
  expect(
    h.audit.events.some((e) => e.outcome === 'failure' && e.reason === 'token: invalid_target'),
  ).toBe(true);
});

test('refused: no resource → invalid_target (every token has exactly one audience)', async () => {
  const { body } = await gatewayToken({ scope: 'model:infer' });
  expect(body.error).toBe('invalid_target');
});

test('refused: two resources → invalid_target', async () => {
  const res = await h.fetch(tokenUrl, {
    method: 'POST',
    body: new URLSearchParams([
      ['grant_type', 'client_credentials'],
      ['client_id', 'acme-gateway'],
      ['client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'],
      ['client_assertion', await clientAssertion('acme-gateway', h.gatewayKey, h.broker.issuer)],
      ['resource', 'urn:bulwark:inference'],
      ['resource', 'urn:bulwark:audit'],
    ]),
  });
  expect(((await res.json()) as { error: string }).error).toBe('invalid_target');
});

test('refused: scope the client may not have → invalid_scope', async () => {
  const { status, body } = await gatewayToken({
    resource: 'urn:bulwark:inference',
    scope: 'model:admin',
  });
  expect(status).toBe(400);
  expect(body.error).toBe('invalid_scope');
});

test('refused: unknown scope → invalid_scope', async () => {
  const { body } = await gatewayToken({
    resource: 'urn:bulwark:inference',
    scope: 'model:everything',
  });
  expect(body.error).toBe('invalid_scope');
});

test('refused: an oversized token request body', async () => {
  const res = await h.fetch(tokenUrl, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'client_credentials', padding: 'x'.repeat(70_000) }),
  });
  expect(res.status).toBe(413);
});

test('refused: a client assertion signed by another key', async () => {
  const { generateKeyPairSync } = await import('node:crypto');
  const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const { status, body } = await postForm(h.fetch, tokenUrl, {
    grant_type: 'client_credentials',
    client_id: 'acme-gateway',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await clientAssertion('acme-gateway', attacker, h.broker.issuer),
    resource: 'urn:bulwark:inference',
  });
  expect(status).toBe(401);
  expect(body.error).toBe('invalid_client');
});

test('structured (JWT) access tokens are not introspected: resource servers verify them locally', async () => {
  const { body } = await gatewayToken({ resource: 'urn:bulwark:inference', scope: 'model:infer' });
  const res = await postForm(h.fetch, `${h.broker.issuer}/token/introspection`, {
    token: String(body.access_token),
    client_id: 'acme-gateway',
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await clientAssertion('acme-gateway', h.gatewayKey, h.broker.issuer),
  });
  expect(res.body.error).toBe('unsupported_token_type');
});
