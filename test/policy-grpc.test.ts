import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import fc from 'fast-check';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import {
  Effect,
  PolicyServiceClient,
  RiskTier,
  type BatchDecideRequest,
  type BatchDecideResponse,
  type DecideRequest,
  type DecideResponse,
  type ExplainRequest,
  type ExplainResponse,
  type GetRevisionRequest,
  type GetRevisionResponse,
  type ReloadRequest,
  type ReloadResponse,
} from '../gen/bulwark/policy/v1/policy.ts';
import { createTestPki, type TestPki } from '../mesh/ca/index.ts';
import { createMeshClient, createMeshServer, type MeshServer } from '../mesh/kit/index.ts';
import {
  createFileSource,
  createPolicyService,
  type DecisionRecord,
  type PolicyService,
} from '../services/policy/index.ts';
import { createTestIssuer } from '../services/policy/testing.ts';

const quiet = pino({ level: 'silent' });
const registry = new Registry();
let auditDown = false;
const audited: DecisionRecord[] = [];
const root = new URL('../policy/', import.meta.url);
let dir: string;
let pki: TestPki;
let policy: PolicyService;
let server: MeshServer;
let client: PolicyServiceClient;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bulwark-policy-grpc-'));
  for (const f of ['model.conf', 'policy.yaml']) copyFileSync(new URL(f, root), join(dir, f));
  pki = await createTestPki({ services: ['policy', 'inference'] });
  const idp = await createTestIssuer();
  policy = await createPolicyService({
    source: createFileSource({
      modelPath: join(dir, 'model.conf'),
      policyPath: join(dir, 'policy.yaml'),
    }),
    logger: quiet,
    watch: false,
    registry,
    auditor: {
      record: async (r, sensitive) => {
        if (sensitive && auditDown) throw new Error('audit unreachable');
        audited.push(r);
      },
      close: async () => undefined,
    },
    tokens: { issuer: idp.issuer, audience: 'urn:bulwark:inference', keys: idp.keys },
  });
  server = createMeshServer({
    tls: pki.services.policy!,
    allowedPeers: [pki.services.inference!.spiffeId],
    logger: quiet,
  });
  policy.addTo(server);
  const { address } = await server.listen();
  client = createMeshClient(PolicyServiceClient, {
    address,
    tls: pki.services.inference!,
    expectedServer: pki.services.policy!.spiffeId,
    logger: quiet,
  });
});

afterAll(async () => {
  client?.close();
  await server?.shutdown(1000);
  await policy?.close();
  await pki?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function call<Req, Res>(
  method: (req: Req, cb: (err: ServiceError | null, res: Res) => void) => unknown,
  req: Req,
): Promise<Res> {
  return new Promise((resolve, reject) =>
    method.call(client, req, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

function req(partial: Partial<DecideRequest>): DecideRequest {
  return {
    subject: 'acme/bob',
    org: 'acme',
    object: 'model:iris',
    action: 'infer',
    roles: [],
    attributes: undefined,
    ...partial,
  };
}

const decide = (r: DecideRequest) => call<DecideRequest, DecideResponse>(client.decide, r);

describe('bulwark.policy.v1.PolicyService', () => {
  it('Decide allows and names the rule and revision', async () => {
    const res = await decide(req({}));
    expect(res).toEqual({
      effect: Effect.EFFECT_ALLOW,
      matchedRule: 'analysts-use-low-risk-models',
      revision: policy.store.revision,
      reason: 'allowed by rule "analysts-use-low-risk-models"',
    });
  });

  it('Decide carries typed attributes', async () => {
    const attributes = {
      riskTier: RiskTier.RISK_TIER_UNSPECIFIED,
      acr: 'mfa',
      certificateBound: true,
      time: new Date('2026-01-01T10:00:00Z'),
      batchSize: 4,
      scopes: ['model:infer'],
    };
    const alice = req({ subject: 'acme/alice', object: 'model:credit', attributes });
    expect((await decide(alice)).effect).toBe(Effect.EFFECT_ALLOW);
    const big = await decide({ ...alice, attributes: { ...attributes, batchSize: 500 } });
    expect(big).toMatchObject({
      effect: Effect.EFFECT_DENY,
      matchedRule: 'no-large-batches-on-high-risk',
    });
  });

  it('BatchDecide answers in order against one revision', async () => {
    const res = await call<BatchDecideRequest, BatchDecideResponse>(client.batchDecide, {
      requests: [req({}), req({ org: 'globex', subject: 'globex/grace', object: 'model:credit' })],
    });
    expect(res.responses.map((r) => r.effect)).toEqual([Effect.EFFECT_ALLOW, Effect.EFFECT_DENY]);
    expect(res.revision).toBe(policy.store.revision);
  });

  it('BatchDecide refuses an empty batch and a batch with one bad entry', async () => {
    await expect(
      call<BatchDecideRequest, BatchDecideResponse>(client.batchDecide, { requests: [] }),
    ).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
    });
    await expect(
      call<BatchDecideRequest, BatchDecideResponse>(client.batchDecide, {
        requests: [req({}), req({ subject: '' })],
      }),
    ).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
    });
  });

  it('Explain lists the rules and roles', async () => {
    const res = await call<ExplainRequest, ExplainResponse>(client.explain, {
      request: req({ subject: 'acme/alice', object: 'model:credit' }),
    });
    expect(res.decision?.effect).toBe(Effect.EFFECT_DENY);
    expect(res.roles).toEqual(['analyst', 'credit-officer']);
    expect(res.rules.map((r) => r.rule)).toContain('acme-credit-officers-score-credit');
  });

  it('GetRevision and Reload: a broken file is refused and the old revision keeps serving', async () => {
    const before = await call<GetRevisionRequest, GetRevisionResponse>(client.getRevision, {});
    expect(before.revision).toBe(policy.store.revision);
    expect(before.ruleCount).toBeGreaterThan(0);
    const text = readFileSync(join(dir, 'policy.yaml'), 'utf8');
    writeFileSync(join(dir, 'policy.yaml'), text.replace("risk_tier == 'low'", 'risk_tier == low'));
    const err = await call<ReloadRequest, ReloadResponse>(client.reload, {}).catch(
      (e: ServiceError) => e,
    );
    expect(err).toMatchObject({ code: status.FAILED_PRECONDITION });
    expect((err as ServiceError).details).toContain(
      'policy.yaml: rule "analysts-use-low-risk-models"',
    );
    expect((await decide(req({}))).revision).toBe(before.revision);
    writeFileSync(join(dir, 'policy.yaml'), text.replace('acme/bob: [analyst]', 'acme/bob: []'));
    const reloaded = await call<ReloadRequest, ReloadResponse>(client.reload, {});
    expect(reloaded.changed).toBe(true);
    // Both reload attempts are in the policy administration trail.
    const trail = audited.filter((r) => r.object === 'policy:revision');
    expect(trail.at(-2)).toMatchObject({
      allowed: false,
      reason: expect.stringContaining('refused: policy.yaml: rule'),
    });
    expect(trail.at(-1)).toMatchObject({ allowed: true, revision: reloaded.revision });
    expect(reloaded.revision).not.toBe(before.revision);
    expect(await decide(req({}))).toMatchObject({
      effect: Effect.EFFECT_DENY,
      revision: reloaded.revision,
    });
    writeFileSync(join(dir, 'policy.yaml'), text);
    expect((await call<ReloadRequest, ReloadResponse>(client.reload, {})).revision).toBe(
      before.revision,
    );
  });

  it('Reload and admin decisions are audited, and refused while audit is unreachable', async () => {
    const ops = req({ subject: 'acme/ops', object: 'model:credit', action: 'admin' });
    await call<ReloadRequest, ReloadResponse>(client.reload, {});
    expect(audited.at(-1)).toMatchObject({
      object: 'policy:reload',
      action: 'admin',
      peerSpiffeId: pki.services.inference!.spiffeId,
    });
    auditDown = true;
    try {
      await expect(call<ReloadRequest, ReloadResponse>(client.reload, {})).rejects.toMatchObject({
        code: status.UNAVAILABLE,
        details: 'audit service unavailable: policy administration is refused until it is back',
      });
      await expect(decide(ops)).rejects.toMatchObject({ code: status.UNAVAILABLE });
      // Ordinary decisions keep being served.
      expect((await decide(req({}))).effect).toBe(Effect.EFFECT_ALLOW);
    } finally {
      auditDown = false;
    }
    expect((await decide(ops)).effect).toBe(Effect.EFFECT_DENY); // no source address: deny, but answered
  });

  it('refuses malformed requests with INVALID_ARGUMENT', async () => {
    for (const bad of [
      req({ subject: '' }),
      req({ org: 'ACME' }),
      req({ object: 'model iris' }),
      req({ action: 'x'.repeat(1000) }),
    ]) {
      await expect(decide(bad)).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    }
  });

  it('counts decisions and cache use in metrics', async () => {
    await decide(req({}));
    await decide(req({}));
    const text = await registry.metrics();
    expect(text).toMatch(/bulwark_policy_decisions_total\{via="decide",effect="allow"\} [1-9]/);
    expect(text).toMatch(/bulwark_policy_cache_hits_total [1-9]/);
    expect(text).toMatch(/bulwark_policy_rules [1-9]/);
  });

  it('survives fuzzed Decide requests and keeps serving', async () => {
    const text = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constantFrom('acme', 'acme/bob', 'model:iris', 'infer', '*', 'model:*'),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          subject: text,
          org: text,
          object: text,
          action: text,
          roles: fc.array(text, { maxLength: 3 }),
          attributes: fc.option(
            fc.record({
              riskTier: fc.integer({ min: -2, max: 9 }) as fc.Arbitrary<RiskTier>,
              acr: fc.option(fc.string(), { nil: undefined }),
              batchSize: fc.option(fc.nat(), { nil: undefined }),
              sourceAddress: fc.option(fc.oneof(fc.ipV4(), fc.ipV6(), fc.string()), {
                nil: undefined,
              }),
              scopes: fc.array(fc.string(), { maxLength: 3 }),
              // An invalid Date cannot be put on the wire (a Timestamp is two integers).
              time: fc.option(fc.date({ noInvalidDate: true }), { nil: undefined }),
            }),
            { nil: undefined },
          ),
        }),
        async (r) => {
          try {
            const res = await decide(r);
            expect([Effect.EFFECT_ALLOW, Effect.EFFECT_DENY]).toContain(res.effect);
          } catch (err) {
            expect((err as ServiceError).code).toBe(status.INVALID_ARGUMENT);
          }
        },
      ),
      { numRuns: 150 },
    );
    expect((await decide(req({}))).effect).toBe(Effect.EFFECT_ALLOW);
  });
});
