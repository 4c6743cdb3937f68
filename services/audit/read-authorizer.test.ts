import { status } from '@grpc/grpc-js';
import { Effect, type DecideRequest } from '../../gen/bulwark/policy/v1/policy.ts';
import { createTestIssuer } from '../policy/testing.ts';
import { createTokenVerifier } from '../policy/token-verifier.ts';
import { AuditError } from './errors.ts';
import { policyReadAuthorizer } from './policy-read-authorizer.ts';
import { allowListReadAuthorizer, firstGrant, grantCovers } from './read-authorizer.ts';

const AUDIT = 'urn:bulwark:audit';
const svc = (n: string) => `spiffe://bulwark.local/svc/${n}`;

const answer = (allowed: boolean) =>
  ({
    effect: allowed ? Effect.EFFECT_ALLOW : Effect.EFFECT_DENY,
    matchedRule: allowed ? 'mesh-audit-readers' : '',
    revision: 'r1',
    reason: '',
  }) as never;

async function rejection(value: unknown): Promise<AuditError> {
  const p = Promise.resolve(value);
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AuditError);
  return err as AuditError;
}

describe('allow-list and chaining', () => {
  it('allow-list: exact IDs and /* prefixes read every organisation; no identity reads nothing', async () => {
    const read = allowListReadAuthorizer([svc('auditor'), 'spiffe://bulwark.local/partner/acme/*']);
    expect(await read({ spiffeId: svc('auditor') })).toEqual({ org: '*', reader: svc('auditor') });
    expect(await read({ spiffeId: 'spiffe://bulwark.local/partner/acme/siem' })).toBeTruthy();
    expect(await read({ spiffeId: svc('inference') })).toBeUndefined();
    expect(await read({ spiffeId: svc('auditor-2') })).toBeUndefined();
    expect(await read({ spiffeId: undefined })).toBeUndefined();
  });

  it('firstGrant takes the first grant; a grant for one organisation covers only it', async () => {
    const chain = firstGrant(
      () => undefined,
      () => ({ org: 'acme', reader: 'acme/carol' }),
      () => ({ org: '*', reader: 'never asked' }),
    );
    const grant = (await chain({ spiffeId: undefined }))!;
    expect(grant.reader).toBe('acme/carol');
    expect(grantCovers(grant, 'acme')).toBe(true);
    expect(grantCovers(grant, 'globex')).toBe(false);
    expect(grantCovers(grant, undefined)).toBe(false);
    expect(grantCovers({ org: '*', reader: 'x' }, undefined)).toBe(true);
  });
});

describe('policyReadAuthorizer', () => {
  const clock = new Date('2026-05-01T10:00:00Z');
  const now = () => clock;
  let issuer: Awaited<ReturnType<typeof createTestIssuer>>;
  let tokens: ReturnType<typeof createTokenVerifier>;
  beforeAll(async () => {
    issuer = await createTestIssuer({ audience: AUDIT, now });
    tokens = createTokenVerifier({
      issuer: issuer.issuer,
      audience: AUDIT,
      keys: issuer.keys,
      now,
    });
  });
  const auditorToken = (claims: Record<string, unknown> = {}) =>
    issuer.mint({
      sub: 'acme/carol',
      org: 'acme',
      roles: ['auditor'],
      scope: 'audit:read',
      ...claims,
    });
  const policyAllowingAuditors = (asked: DecideRequest[]) => async (req: DecideRequest) => {
    asked.push(req);
    return answer(req.roles.includes('auditor') || req.subject === svc('siem'));
  };

  it('a token reader is its subject: asks read on audit:log with its org and roles; grant = its org', async () => {
    const asked: DecideRequest[] = [];
    const read = policyReadAuthorizer({ decide: policyAllowingAuditors(asked), tokens });
    const grant = await read({
      spiffeId: svc('gateway'),
      authorization: `Bearer ${await auditorToken()}`,
    });
    expect(grant).toEqual({ org: 'acme', reader: 'acme/carol' });
    expect(asked[0]).toMatchObject({
      subject: 'acme/carol',
      org: 'acme',
      roles: ['auditor'],
      object: 'audit:log',
      action: 'read',
    });
  });

  it('refuses tokens: malformed, without audit:read, foreign audience, expired, other org asked', async () => {
    const asked: DecideRequest[] = [];
    const read = policyReadAuthorizer({ decide: policyAllowingAuditors(asked), tokens });
    const peer = { spiffeId: svc('gateway') };
    expect((await rejection(read({ ...peer, authorization: 'Basic abc' }))).code).toBe(
      'ERR_AUDIT_UNAUTHENTICATED',
    );
    const noScope = await auditorToken({ scope: 'model:infer' });
    const e1 = await rejection(read({ ...peer, authorization: `Bearer ${noScope}` }));
    expect(e1.grpcStatus).toBe(status.PERMISSION_DENIED);
    expect(e1.message).toMatch(/audit:read/);
    const foreign = await issuer.mint(
      { sub: 'acme/carol', org: 'acme', roles: ['auditor'], scope: 'audit:read' },
      { audience: 'urn:bulwark:inference' },
    );
    expect((await rejection(read({ ...peer, authorization: `Bearer ${foreign}` }))).code).toBe(
      'ERR_AUDIT_UNAUTHENTICATED',
    );
    const old = await issuer.mint(
      { sub: 'acme/carol', org: 'acme', roles: ['auditor'], scope: 'audit:read' },
      { now: new Date(clock.getTime() - 3600_000) },
    );
    const e2 = await rejection(read({ ...peer, authorization: `Bearer ${old}` }));
    expect(e2.message).toMatch(/expired/);
    const good = `Bearer ${await auditorToken()}`;
    const e3 = await rejection(read({ ...peer, authorization: good, org: 'globex' }));
    expect(e3.code).toBe('ERR_AUDIT_PERMISSION_DENIED');
    expect(asked).toHaveLength(0);
    const noVerifier = policyReadAuthorizer({ decide: policyAllowingAuditors(asked) });
    expect((await rejection(noVerifier({ ...peer, authorization: good }))).code).toBe(
      'ERR_AUDIT_UNAUTHENTICATED',
    );
  });

  it('certificate-bound tokens must come with their certificate; partners must bind', async () => {
    const read = policyReadAuthorizer({ decide: policyAllowingAuditors([]), tokens });
    const partner = 'spiffe://bulwark.local/partner/acme/reviewer';
    const bound = `Bearer ${await auditorToken({ cnf: { 'x5t#S256': 'thumb-A' } })}`;
    expect(
      await read({ spiffeId: partner, certificateThumbprint: 'thumb-A', authorization: bound }),
    ).toMatchObject({ org: 'acme' });
    const e1 = await rejection(
      read({ spiffeId: partner, certificateThumbprint: 'thumb-B', authorization: bound }),
    );
    expect(e1.message).toMatch(/different client certificate/);
    const unbound = `Bearer ${await auditorToken()}`;
    const e2 = await rejection(
      read({ spiffeId: partner, certificateThumbprint: 'thumb-A', authorization: unbound }),
    );
    expect(e2.message).toMatch(/bound/);
  });

  it('a workload is its SPIFFE ID: every organisation is asked as the mesh, one as itself', async () => {
    const asked: DecideRequest[] = [];
    const read = policyReadAuthorizer({ decide: policyAllowingAuditors(asked), cacheMs: 0 });
    expect(await read({ spiffeId: svc('siem') })).toEqual({ org: '*', reader: svc('siem') });
    expect(await read({ spiffeId: svc('siem'), org: 'globex' })).toEqual({
      org: 'globex',
      reader: svc('siem'),
    });
    expect(await read({ spiffeId: svc('inference') })).toBeUndefined();
    expect(await read({ spiffeId: undefined })).toBeUndefined();
    expect(asked.map((r) => [r.subject, r.org])).toEqual([
      [svc('siem'), 'bulwark.local'],
      [svc('siem'), 'globex'],
      [svc('inference'), 'bulwark.local'],
    ]);
  });

  it('fails closed when the policy service cannot answer; reuses answers only briefly', async () => {
    let up = true;
    let calls = 0;
    let t = 1000;
    const read = policyReadAuthorizer({
      decide: async () => {
        calls++;
        if (!up) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 14 });
        return answer(true);
      },
      cacheMs: 2000,
      now: () => t,
    });
    const caller = { spiffeId: svc('siem') };
    expect(await read(caller)).toBeTruthy();
    expect(await read(caller)).toBeTruthy();
    expect(calls).toBe(1);
    up = false;
    t += 2001;
    const err = await rejection(read(caller));
    expect(err.code).toBe('ERR_AUDIT_POLICY_UNAVAILABLE');
    expect(err.grpcStatus).toBe(status.UNAVAILABLE);
    expect(calls).toBe(2);
    // A new policy revision drops remembered answers.
    up = true;
    let rev = 'r1';
    let asked = 0;
    const revised = policyReadAuthorizer({
      decide: async (req) => {
        asked++;
        return { ...(answer(req.subject === svc('siem')) as object), revision: rev } as never;
      },
      cacheMs: 60_000,
      now: () => t,
    });
    await revised(caller);
    await revised(caller);
    expect(asked).toBe(1);
    rev = 'r2';
    await revised({ spiffeId: svc('other') });
    expect(await revised(caller)).toBeTruthy();
    expect(asked).toBe(3);
    const unspecified = policyReadAuthorizer({
      decide: async () => ({ effect: Effect.EFFECT_UNSPECIFIED }) as never,
    });
    expect(await unspecified(caller)).toBeUndefined();
  });
});
