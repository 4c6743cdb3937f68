import { createHash, X509Certificate } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Client, ServiceError } from '@grpc/grpc-js';
import { SignJWT, base64url } from 'jose';
import { pino } from 'pino';
import { createTestPki, type TestPki } from '../mesh/ca/index.ts';
import {
  createMeshClient,
  createMeshServer,
  type GrpcClientConstructor,
  type MeshServer,
} from '../mesh/kit/index.ts';
import {
  createFileSource,
  createPolicyService,
  type DecisionRecord,
  type PolicyService,
} from '../services/policy/index.ts';
import { jsonToStruct, loadEnvoyAuthorization } from '../services/policy/envoy-protos.ts';
import type { CheckRequest, CheckResponse } from '../services/policy/ext-authz.ts';
import { createTestIssuer, type TestIssuer } from '../services/policy/testing.ts';

const clock = new Date('2026-03-02T10:00:00Z');
const now = () => clock;
const quiet = pino({ level: 'silent' });
const root = new URL('../policy/', import.meta.url);

interface AuthorizationClient extends Client {
  Check(req: CheckRequest, cb: (err: ServiceError | null, res: CheckResponse) => void): void;
}

let pki: TestPki;
let idp: TestIssuer;
let policy: PolicyService;
let server: MeshServer;
let client: AuthorizationClient;
const logLines: string[] = [];
const records: DecisionRecord[] = [];

beforeAll(async () => {
  pki = await createTestPki({ services: ['policy', 'gateway'] });
  idp = await createTestIssuer({ now });
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _e, done) {
        logLines.push(String(chunk));
        done();
      },
    }),
  );
  policy = await createPolicyService({
    source: createFileSource({
      modelPath: new URL('model.conf', root).pathname,
      policyPath: new URL('policy.yaml', root).pathname,
    }),
    logger,
    now,
    watch: false,
    auditor: { record: async (r) => void records.push(r), close: async () => undefined },
    tokens: { issuer: idp.issuer, audience: 'urn:bulwark:inference', keys: idp.keys },
  });
  server = createMeshServer({
    tls: pki.services.policy!,
    allowedPeers: [pki.services.gateway!.spiffeId],
    logger: quiet,
  });
  policy.addTo(server);
  const { address } = await server.listen();
  const Ctor = loadEnvoyAuthorization().client as GrpcClientConstructor<AuthorizationClient>;
  client = createMeshClient(Ctor, {
    address,
    tls: pki.services.gateway!,
    expectedServer: pki.services.policy!.spiffeId,
    logger: quiet,
  });
});

afterAll(async () => {
  client?.close();
  await server?.shutdown(1000);
  await policy?.close();
  await pki?.cleanup();
});

function check(req: CheckRequest): Promise<CheckResponse> {
  return new Promise((resolve, reject) =>
    client.Check(req, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

const INFER = '/inference.GRPCInferenceService/ModelInfer';

function request(
  headers: Record<string, string>,
  extra: Partial<NonNullable<CheckRequest['attributes']>> = {},
  path: string | null = INFER,
): CheckRequest {
  return {
    attributes: {
      source: {
        address: { socketAddress: { address: '203.0.113.5' } },
        principal: 'spiffe://bulwark.local/partner/acme/app',
      },
      request: { http: { method: 'POST', ...(path !== null ? { path } : {}), headers } },
      ...extra,
    },
  };
}

const bearer = async (claims: Record<string, unknown>, o?: Parameters<TestIssuer['mint']>[1]) =>
  `Bearer ${await idp.mint(claims, o)}`;
const bob = { sub: 'acme/bob', org: 'acme' };

function expectHeaders(res: CheckResponse): Record<string, string> {
  return Object.fromEntries(
    (res.okResponse?.headers ?? []).map((h) => [h.header.key, h.header.value]),
  );
}

function expectRefusal(
  res: CheckResponse,
  grpc: number,
  http: string,
): { error: string; message: string } {
  expect(res.status.code).toBe(grpc);
  expect(res.okResponse).toBeUndefined();
  expect(res.deniedResponse?.status.code).toBe(http);
  const body = JSON.parse(res.deniedResponse!.body) as { error: string; message: string };
  // Refusals never name rules, roles or the revision.
  expect(res.deniedResponse!.body).not.toMatch(/rule|analyst|officer|sha256|revision/);
  return body;
}

describe('ext_authz Check over mTLS', () => {
  it('allows with the jwt_authn payload from metadata_context and sets the identity headers', async () => {
    const res = await check(
      request(
        { 'x-bulwark-model': 'iris' },
        {
          metadataContext: {
            filterMetadata: {
              'envoy.filters.http.jwt_authn': jsonToStruct({
                jwt_payload: {
                  ...bob,
                  iss: idp.issuer,
                  aud: 'urn:bulwark:inference',
                  exp: clock.getTime() / 1000 + 60,
                },
              }),
            },
          },
        },
      ),
    );
    expect(res.status.code).toBe(0);
    expect(expectHeaders(res)).toEqual({
      'x-bulwark-subject': 'acme/bob',
      'x-bulwark-org': 'acme',
      'x-bulwark-policy-revision': policy.store.revision,
    });
  });

  it('allows by verifying the bearer token itself when no metadata is present', async () => {
    const res = await check(
      request({ 'x-bulwark-model': 'iris', authorization: await bearer(bob) }),
    );
    expect(res.status.code).toBe(0);
    expect(expectHeaders(res)['x-bulwark-subject']).toBe('acme/bob');
  });

  it('reads the model from the REST path too', async () => {
    const res = await check(
      request({ authorization: await bearer(bob) }, {}, '/v2/models/iris/versions/2/infer'),
    );
    expect(res.status.code).toBe(0);
  });

  it('accepts a certificate-bound token only with its certificate', async () => {
    const cert = new X509Certificate(pki.services.gateway!.certPem);
    const x5t = createHash('sha256').update(cert.raw).digest('base64url');
    const alice = { sub: 'acme/alice', org: 'acme', acr: 'mfa', cnf: { 'x5t#S256': x5t } };
    const headers = {
      'x-bulwark-model': 'credit',
      'x-bulwark-batch-size': '4',
      authorization: await bearer(alice),
    };
    const withCert = request(headers);
    withCert.attributes!.source!.certificate = encodeURIComponent(pki.services.gateway!.certPem);
    expect((await check(withCert)).status.code).toBe(0);
    const body = expectRefusal(await check(request(headers)), 16, 'Unauthorized');
    expect(body.message).toBe('token is bound to a different client certificate');
  });
});

describe('ext_authz refusals (attacker side)', () => {
  it('no headers at all → UNAUTHENTICATED', async () => {
    const body = expectRefusal(await check(request({})), 16, 'Unauthorized');
    expect(body).toEqual({ error: 'unauthenticated', message: 'missing bearer token' });
  });

  it('an empty CheckRequest → UNAUTHENTICATED', async () => {
    expectRefusal(await check({}), 16, 'Unauthorized');
  });

  it('no path → PERMISSION_DENIED', async () => {
    const body = expectRefusal(
      await check(request({ authorization: await bearer(bob) }, {}, null)),
      7,
      'Forbidden',
    );
    expect(body.message).toBe('route is not served through the gateway');
  });

  it('gRPC path without the model header → PERMISSION_DENIED', async () => {
    const body = expectRefusal(
      await check(request({ authorization: await bearer(bob) })),
      7,
      'Forbidden',
    );
    expect(body.message).toBe('missing x-bulwark-model header');
  });

  it.each([
    ['garbage', 'Bearer not-a-jwt'],
    ['three garbage segments', 'Bearer aaa.bbb.ccc'],
    ['a non-bearer scheme', 'Basic YWxhZGRpbjpvcGVuc2VzYW1l'],
  ])('a %s token → UNAUTHENTICATED', async (_name, authorization) => {
    expectRefusal(
      await check(request({ 'x-bulwark-model': 'iris', authorization })),
      16,
      'Unauthorized',
    );
  });

  it('alg: none → UNAUTHENTICATED', async () => {
    const enc = (o: object) => base64url.encode(JSON.stringify(o));
    const at = clock.getTime() / 1000;
    const token = `${enc({ alg: 'none', typ: 'at+jwt' })}.${enc({ ...bob, iss: idp.issuer, aud: 'urn:bulwark:inference', exp: at + 300 })}.`;
    const body = expectRefusal(
      await check(request({ 'x-bulwark-model': 'iris', authorization: `Bearer ${token}` })),
      16,
      'Unauthorized',
    );
    expect(body.message).toBe('invalid token');
  });

  it('HS256 signed with the public key as the secret → UNAUTHENTICATED', async () => {
    const at = clock.getTime() / 1000;
    const secret = new TextEncoder().encode(JSON.stringify(idp.publicJwk));
    const token = await new SignJWT({ ...bob })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: 'test-1' })
      .setIssuer(idp.issuer)
      .setAudience('urn:bulwark:inference')
      .setIssuedAt(at)
      .setExpirationTime(at + 300)
      .sign(secret);
    expectRefusal(
      await check(request({ 'x-bulwark-model': 'iris', authorization: `Bearer ${token}` })),
      16,
      'Unauthorized',
    );
  });

  it('a token of another type (typ JWT, not at+jwt) → UNAUTHENTICATED', async () => {
    const authorization = await bearer(bob, { typ: 'JWT' });
    const body = expectRefusal(
      await check(request({ 'x-bulwark-model': 'iris', authorization })),
      16,
      'Unauthorized',
    );
    expect(body.message).toBe('invalid token');
  });

  it.each([
    ['wrong issuer', { issuer: 'https://evil.example' }, 'invalid token'],
    ['wrong audience', { audience: 'urn:bulwark:audit' }, 'invalid token'],
    ['expired', { now: new Date(clock.getTime() - 3600_000) }, 'token expired'],
    ['not yet valid', { notBefore: new Date(clock.getTime() + 3600_000) }, 'token not yet valid'],
  ] as const)('%s → UNAUTHENTICATED', async (_name, o, message) => {
    const body = expectRefusal(
      await check(request({ 'x-bulwark-model': 'iris', authorization: await bearer(bob, o) })),
      16,
      'Unauthorized',
    );
    expect(body.message).toBe(message);
  });

  it('jwt_authn metadata from another issuer → UNAUTHENTICATED', async () => {
    const meta = jsonToStruct({
      jwt_payload: {
        ...bob,
        iss: 'https://evil.example',
        aud: 'urn:bulwark:inference',
        exp: clock.getTime() / 1000 + 60,
      },
    });
    expectRefusal(
      await check(
        request(
          { 'x-bulwark-model': 'iris' },
          { metadataContext: { filterMetadata: { 'envoy.filters.http.jwt_authn': meta } } },
        ),
      ),
      16,
      'Unauthorized',
    );
  });

  it('a token whose subject belongs to another organisation → UNAUTHENTICATED', async () => {
    const body = expectRefusal(
      await check(
        request({
          'x-bulwark-model': 'credit',
          authorization: await bearer({ sub: 'globex/grace', org: 'acme' }),
        }),
      ),
      16,
      'Unauthorized',
    );
    expect(body.message).toBe('token subject and organisation disagree');
  });

  it("org A's user asking for org B's model → PERMISSION_DENIED without policy internals", async () => {
    const grace = { sub: 'globex/grace', org: 'globex', acr: 'mfa', roles: ['credit-officer'] };
    const body = expectRefusal(
      await check(
        request({
          'x-bulwark-model': 'credit',
          'x-bulwark-batch-size': '1',
          authorization: await bearer(grace),
        }),
      ),
      7,
      'Forbidden',
    );
    expect(body).toEqual({
      error: 'permission_denied',
      message: 'not permitted to infer model "credit" for organisation "globex"',
    });
  });

  it('an unknown model → PERMISSION_DENIED, indistinguishable from a forbidden one', async () => {
    const body = expectRefusal(
      await check(request({ 'x-bulwark-model': 'secret-model', authorization: await bearer(bob) })),
      7,
      'Forbidden',
    );
    expect(body.message).toBe(
      'not permitted to infer model "secret-model" for organisation "acme"',
    );
    expect(logLines.join('')).toContain('check: unknown model');
    expect(records.at(-1)).toMatchObject({
      via: 'check',
      subject: 'acme/bob',
      object: 'model:secret-model',
      allowed: false,
      reason: 'unknown model',
    });
  });

  it.each([['../etc/passwd'], ['IRIS'], ['a'.repeat(100)]])(
    'a malformed model name %s → PERMISSION_DENIED',
    async (model) => {
      expectRefusal(
        await check(request({ 'x-bulwark-model': model, authorization: await bearer(bob) })),
        7,
        'Forbidden',
      );
    },
  );

  it('keeps serving after all of that', async () => {
    const res = await check(
      request({ 'x-bulwark-model': 'iris', authorization: await bearer(bob) }),
    );
    expect(res.status.code).toBe(0);
    expect(logLines.join('')).not.toContain('eyJ'); // no token in any log line
    expect(JSON.stringify(records)).not.toContain('eyJ'); // nor in any audit record
    expect(records.at(-1)).toMatchObject({
      via: 'check',
      subject: 'acme/bob',
      object: 'model:iris',
      allowed: true,
      sourceAddress: '203.0.113.5',
      peerSpiffeId: 'spiffe://bulwark.local/partner/acme/app',
    });
  });
});
