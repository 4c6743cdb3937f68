import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { createPolicyEngine, type DecisionRequest } from './engine.ts';
import {
  compilePolicy,
  compilePolicyRows,
  compilePolicyYaml,
  policyRows,
  type PolicyDocument,
} from './policy-document.ts';
import { createReferenceEnforcer, validateModel } from './casbin-model.ts';
import { errorCode } from '../../mesh/errors.ts';

const modelText = readFileSync(new URL('../../policy/model.conf', import.meta.url), 'utf8');
const defaultYaml = readFileSync(new URL('../../policy/policy.yaml', import.meta.url), 'utf8');
const noon = () => new Date('2026-01-05T12:00:00Z');
const engine = createPolicyEngine({ modelText, policy: compilePolicyYaml(defaultYaml), now: noon });

const strong = { certificate_bound: true, acr: 'mfa', batch_size: 4 } as const;

describe('default policy', () => {
  it('lets analysts of both organisations use iris', () => {
    for (const [subject, org] of [
      ['acme/bob', 'acme'],
      ['globex/grace', 'globex'],
    ] as const) {
      const d = engine.decide({ subject, org, object: 'model:iris', action: 'infer' });
      expect(d).toMatchObject({ allowed: true, matchedRule: 'analysts-use-low-risk-models' });
      expect(d.revision).toMatch(/^sha256:[0-9a-f]{64}$/);
    }
  });

  it('covers every version of a model named without one', () => {
    const d = engine.decide({
      subject: 'acme/bob',
      org: 'acme',
      object: 'model:iris@7',
      action: 'infer',
    });
    expect(d.allowed).toBe(true);
  });

  it('lets acme credit officers score credit only with a bound, multi-factor token', () => {
    const req = { subject: 'acme/alice', org: 'acme', object: 'model:credit', action: 'infer' };
    expect(engine.decide({ ...req, attributes: strong }).allowed).toBe(true);
    expect(
      engine.decide({ ...req, attributes: { ...strong, certificate_bound: false } }),
    ).toMatchObject({
      allowed: false,
      matchedRule: '',
    });
    expect(engine.decide({ ...req, attributes: { ...strong, acr: 'pwd' } }).allowed).toBe(false);
  });

  it('an explicit deny overrides the allow (large batch on a high-risk model)', () => {
    const d = engine.decide({
      subject: 'acme/alice',
      org: 'acme',
      object: 'model:credit',
      action: 'infer',
      attributes: { ...strong, batch_size: 64 },
    });
    expect(d).toMatchObject({ allowed: false, matchedRule: 'no-large-batches-on-high-risk' });
  });

  it('a deny whose attribute is missing still applies', () => {
    const d = engine.decide({
      subject: 'acme/alice',
      org: 'acme',
      object: 'model:credit',
      action: 'infer',
      attributes: { certificate_bound: true, acr: 'mfa' },
    });
    expect(d).toMatchObject({ allowed: false, matchedRule: 'no-large-batches-on-high-risk' });
  });

  it("refuses a globex user asking for acme's credit model, even claiming acme's roles", () => {
    const asGlobex = {
      subject: 'globex/grace',
      org: 'globex',
      object: 'model:credit',
      action: 'infer',
    };
    expect(engine.decide({ ...asGlobex, attributes: strong }).allowed).toBe(false);
    expect(
      engine.decide({ ...asGlobex, roles: ['credit-officer'], attributes: strong }).allowed,
    ).toBe(false);
    // A globex user naming acme as its org holds no acme roles.
    expect(engine.decide({ ...asGlobex, org: 'acme', attributes: strong }).allowed).toBe(false);
  });

  it('a caller cannot lower a catalogued model’s risk tier', () => {
    const d = engine.decide({
      subject: 'acme/bob',
      org: 'acme',
      object: 'model:credit',
      action: 'infer',
      attributes: { risk_tier: 'low', batch_size: 1 },
    });
    expect(d.allowed).toBe(false);
  });

  it('denies unknown subjects, models and actions by default', () => {
    expect(
      engine.decide({ subject: 'acme/mallory', org: 'acme', object: 'model:iris', action: 'infer' })
        .allowed,
    ).toBe(false);
    expect(
      engine.decide({ subject: 'acme/bob', org: 'acme', object: 'model:nope', action: 'infer' })
        .allowed,
    ).toBe(false);
    expect(
      engine.decide({ subject: 'acme/bob', org: 'acme', object: 'model:iris', action: 'admin' })
        .allowed,
    ).toBe(false);
  });

  it('takes roles from the token within the organisation', () => {
    const d = engine.decide({
      subject: 'globex/new',
      org: 'globex',
      object: 'model:iris',
      action: 'infer',
      roles: ['analyst'],
    });
    expect(d.allowed).toBe(true);
    expect(engine.rolesOf('acme/alice', 'acme')).toEqual(['analyst', 'credit-officer']);
  });

  it('checks the source network for admin actions', () => {
    const admin = { subject: 'acme/ops', org: 'acme', object: 'model:credit', action: 'admin' };
    expect(engine.decide({ ...admin, attributes: { source_address: '10.4.0.1' } }).allowed).toBe(
      true,
    );
    expect(engine.decide({ ...admin, attributes: { source_address: '203.0.113.9' } }).allowed).toBe(
      false,
    );
    expect(engine.decide(admin).allowed).toBe(false);
  });

  it('explains which rules matched and why', () => {
    const x = engine.explain({
      subject: 'acme/alice',
      org: 'acme',
      object: 'model:credit',
      action: 'infer',
      attributes: { ...strong, batch_size: 64 },
    });
    expect(x.decision.allowed).toBe(false);
    expect(x.roles).toEqual(['analyst', 'credit-officer']);
    expect(x.rules).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ rule: 'acme-credit-officers-score-credit', matched: true }),
        expect.objectContaining({
          rule: 'no-large-batches-on-high-risk',
          matched: true,
          effect: 'deny',
        }),
        expect.objectContaining({
          rule: 'acme-model-admins',
          matched: false,
          detail: 'action is "admin"',
        }),
      ]),
    );
  });

  it.each([
    [{ subject: '', org: 'acme', object: 'model:iris', action: 'infer' }],
    [{ subject: 'a b', org: 'acme', object: 'model:iris', action: 'infer' }],
    [{ subject: 'x', org: '*', object: 'model:iris', action: 'infer' }],
    [{ subject: 'x', org: 'acme', object: 'model:iris', action: 'i'.repeat(300) }],
    [{ subject: 'x', org: 'acme', object: 'model:iris', action: 'infer', roles: ['bad role'] }],
  ])('refuses a malformed request %#', (req) => {
    expect(() => engine.decide(req as DecisionRequest)).toThrow(
      expect.objectContaining({ code: 'ERR_POLICY_INVALID_REQUEST' }),
    );
  });
});

describe('revision', () => {
  it('is a content hash of model and policy', () => {
    const again = createPolicyEngine({
      modelText,
      policy: compilePolicyYaml(defaultYaml + '\n# comment\n'),
    });
    expect(again.revision).toBe(engine.revision);
    const changed = createPolicyEngine({
      modelText,
      policy: compilePolicyYaml(defaultYaml.replace('risk: low', 'risk: medium')),
    });
    expect(changed.revision).not.toBe(engine.revision);
    const otherModel = createPolicyEngine({
      modelText: modelText + '\n# note',
      policy: compilePolicyYaml(defaultYaml),
    });
    expect(otherModel.revision).toBe(engine.revision); // comments are not content
    const stricter = createPolicyEngine({
      modelText: modelText.replace(
        'r = sub, dom, obj, act, attrs',
        'r = sub, dom,  obj, act, attrs',
      ),
      policy: compilePolicyYaml(defaultYaml),
    });
    expect(stricter.revision).not.toBe(engine.revision);
  });
});

describe('policy and model validation', () => {
  const load = (text: string) => () => compilePolicyYaml(text, 'policy.yaml');
  it.each([
    ['a YAML syntax error', 'version: 1\nrules: [\n', 'YAML syntax error at line'],
    [
      'an unknown attribute',
      defaultYaml.replace("risk_tier == 'low'", "colour == 'red'"),
      'unknown attribute "colour"',
    ],
    [
      'an unknown key',
      defaultYaml.replace('effect: allow', 'effect: allow\n    priority: 1'),
      'rules.0',
    ],
    ['a bad effect', defaultYaml.replace('effect: allow', 'effect: maybe'), 'rules.0.effect'],
    [
      'a pattern with an inner star',
      defaultYaml.replace('object: model:iris', 'object: model:*iris'),
      'rules.0.object',
    ],
    [
      'a duplicate rule id',
      defaultYaml.replace('id: mesh-audit-readers', 'id: acme-model-admins'),
      'duplicate rule id',
    ],
    [
      'code in a condition',
      defaultYaml.replace("risk_tier == 'low'", "risk_tier == 'low' || require('child_process')"),
      'when:',
    ],
  ])('refuses %s with a message naming it', (_name, text, message) => {
    expect(load(text)).toThrow(message);
    try {
      load(text)();
    } catch (err) {
      expect(errorCode(err)).toBe('ERR_POLICY_INVALID');
    }
  });

  it('refuses a model that differs from the served semantics or uses eval()', () => {
    expect(() => validateModel(modelText.replace('p.act == r.act ||', ''))).toThrow(
      '[matchers] differs',
    );
    expect(() =>
      validateModel(modelText.replace('e = some(where (p.eft == allow)) && ', 'e = ')),
    ).toThrow('[policy_effect] differs');
    expect(() => validateModel(modelText + '\nx = eval(p.cond)')).toThrow('eval() is not allowed');
    expect(() => validateModel('garbage')).toThrow(/model/);
  });
});

describe('stored rows cannot inject matcher code', () => {
  const good = ['analyst', 'acme', 'model:iris', 'infer', '', 'allow', 'r1'];
  it.each([
    ['subject', 0, 'analyst || true'],
    ['org', 1, 'acme" || "1" == "1'],
    ['object', 2, "model:iris') || ('1"],
    ['action', 3, 'infer || r.act'],
    ['condition', 4, "require('child_process').execSync('id')"],
    ['effect', 5, 'allow || p.eft'],
    ['id', 6, 'r1"; process.exit(1); "'],
  ])('refuses code in the %s field', (_name, field, value) => {
    const row = [...good];
    row[field as number] = value as string;
    expect(() => compilePolicyRows([{ ptype: 'p', values: row }])).toThrow(
      expect.objectContaining({ code: 'ERR_POLICY_INVALID' }),
    );
  });

  it('accepts the clean row and round-trips the compiled policy', () => {
    const policy = compilePolicyYaml(defaultYaml);
    const again = compilePolicyRows(policyRows(policy));
    expect(createPolicyEngine({ modelText, policy: again }).revision).toBe(engine.revision);
    expect(compilePolicyRows([{ ptype: 'p', values: good }]).rules).toHaveLength(1);
  });
});

describe('indexed engine agrees with the Casbin reference', () => {
  const orgs = ['acme', 'globex', 'initech'];
  const subjects = ['u1', 'u2', 'analyst', 'admin', 'viewer'];
  const objects = [
    'model:iris',
    'model:iris@2',
    'model:fraud-a',
    'model:fraud-b@1',
    'audit:log',
    'policy:rules',
  ];
  const patterns = [
    ...objects.filter((o) => !o.includes('@')),
    'model:fraud-*',
    'model:*',
    '*',
    'model:iris@2',
  ];
  const conditions = [
    undefined,
    "acr == 'mfa'",
    'batch_size <= 8',
    "risk_tier >= 'high' || certificate_bound",
    'hour < 12',
  ];

  const rule = fc.record({
    effect: fc.constantFrom('allow', 'deny'),
    subject: fc.constantFrom(...subjects),
    org: fc.constantFrom('*', ...orgs),
    object: fc.constantFrom(...patterns),
    action: fc.constantFrom('infer', 'read', '*'),
    when: fc.constantFrom(...conditions),
  });
  const grant = fc.tuple(
    fc.constantFrom(...orgs),
    fc.constantFrom(...subjects),
    fc.constantFrom(...subjects),
  );
  const request = fc.record({
    subject: fc.constantFrom(...subjects),
    org: fc.constantFrom(...orgs),
    object: fc.constantFrom(...objects),
    action: fc.constantFrom('infer', 'read', 'admin'),
    attributes: fc.record(
      {
        acr: fc.constantFrom('mfa', 'pwd'),
        batch_size: fc.integer({ min: 1, max: 16 }),
        certificate_bound: fc.boolean(),
        time: fc.constantFrom(new Date('2026-01-01T03:00:00Z'), new Date('2026-01-01T15:00:00Z')),
      },
      { requiredKeys: [] },
    ),
  });

  it('on random policies and requests', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(rule, { maxLength: 12 }),
        fc.array(grant, { maxLength: 6 }),
        fc.array(request, { minLength: 1, maxLength: 8 }),
        async (rules, grants, requests) => {
          const organisations: NonNullable<PolicyDocument['organisations']> = {};
          for (const [org, member, role] of grants) {
            const o = (organisations[org] ??= { roles: {}, members: {} });
            (o.members![member] ??= []).push(role);
          }
          const doc = {
            version: 1,
            models: { 'fraud-a': { risk: 'high' } },
            organisations,
            rules: rules.map((r, i) => ({
              id: `r${i}`,
              ...r,
              ...(r.when ? { when: r.when } : { when: undefined }),
            })),
          };
          const policy = compilePolicy(JSON.parse(JSON.stringify(doc)));
          const fast = createPolicyEngine({ modelText, policy, now: noon });
          const reference = await createReferenceEnforcer(modelText, policy);
          for (const req of requests) {
            const n = fast.normalize(req);
            const expected = await reference.enforce(
              n.subject,
              n.org,
              n.object,
              n.action,
              n.attributes,
            );
            expect(fast.decideNormalized(n).allowed).toBe(expected);
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
