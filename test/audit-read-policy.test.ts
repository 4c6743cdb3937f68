/**
 * Audit reads decided by the real policy service over real mTLS: bearer tokens for
 * `urn:bulwark:audit` (signed with keys made here), the default policy's `mesh-audit-readers`
 * rule, organisation narrowing, workload readers, and every refusal tried from the attacker's
 * side — including a policy service that is down.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import {
  AuditRecord,
  AuditServiceClient,
  EventType,
  GetInclusionProofRequest,
  Outcome,
  QueryRequest,
  type GetInclusionProofResponse,
  type QueryResponse,
} from '../gen/bulwark/audit/v1/audit.ts';
import { PolicyServiceClient } from '../gen/bulwark/policy/v1/policy.ts';
import { certificateThumbprint, createTestPki, type TestPki } from '../mesh/ca/index.ts';
import { createMeshClient, createMeshServer, type MeshServer } from '../mesh/kit/index.ts';
import {
  createAuditService,
  openSqliteStore,
  policyReadAuthorizer,
  promiseDecide,
  type AuditService,
} from '../services/audit/index.ts';
import { createFileSource } from '../services/policy/policy-source.ts';
import { createPolicyService, type PolicyService } from '../services/policy/service.ts';
import { createTestIssuer, type TestIssuer } from '../services/policy/testing.ts';
import { createTokenVerifier } from '../services/policy/token-verifier.ts';
import { pemOf, quietLogger } from './support/audit-service.ts';

const AUDIENCE = 'urn:bulwark:audit';
const id = (n: string) => `spiffe://bulwark.local/svc/${n}`;
const ROOT = join(import.meta.dirname, '..');

describe('audit reads authorised by the policy service', () => {
  let dir: string;
  let pki: TestPki;
  let idp: TestIssuer;
  let policy: PolicyService;
  let policyServer: MeshServer;
  let policyClient: PolicyServiceClient;
  let audit: AuditService;
  let auditServer: MeshServer;
  const clients: AuditServiceClient[] = [];
  let auditAddress: string;

  const client = (tls: { certPem: string; keyPem: string; caPem: string }) => {
    const c = createMeshClient(AuditServiceClient, {
      address: auditAddress,
      tls,
      expectedServer: id('audit'),
      logger: quietLogger,
    });
    clients.push(c);
    return c;
  };
  const metadata = (token?: string) => {
    const md = new Metadata();
    if (token !== undefined) md.set('authorization', `Bearer ${token}`);
    return md;
  };
  const query = (c: AuditServiceClient, request: Partial<QueryRequest>, token?: string) =>
    new Promise<QueryResponse>((resolve, reject) =>
      c.query(QueryRequest.fromPartial(request), metadata(token), (err, res) =>
        err ? reject(err) : resolve(res),
      ),
    );
  const proof = (c: AuditServiceClient, leafIndex: number, token?: string) =>
    new Promise<GetInclusionProofResponse>((resolve, reject) =>
      c.getInclusionProof(
        GetInclusionProofRequest.fromPartial({ leafIndex }),
        metadata(token),
        (err, res) => (err ? reject(err) : resolve(res)),
      ),
    );
  const refusal = async (p: Promise<unknown>) =>
    (await p.then(
      () => {
        throw new Error('expected a refusal');
      },
      (e: unknown) => e,
    )) as ServiceError;
  const token = (claims: Record<string, unknown>, options?: Parameters<TestIssuer['mint']>[1]) =>
    idp.mint({ scope: 'audit:read', ...claims }, { audience: AUDIENCE, ...options });
  const acmeAuditor = (extra: Record<string, unknown> = {}) =>
    token({ sub: 'acme/carol', org: 'acme', roles: ['auditor'], ...extra });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'audit-read-policy-'));
    pki = await createTestPki({
      services: ['audit', 'policy', 'inference', 'gateway', 'siem'],
      clients: [
        { org: 'acme', name: 'reviewer' },
        { org: 'acme', name: 'intruder' },
      ],
    });
    idp = await createTestIssuer({ audience: AUDIENCE });
    // The shipped policy, plus one workload (a SIEM) that reads every organisation.
    const policyFile = join(dir, 'policy.yaml');
    writeFileSync(
      policyFile,
      `${readFileSync(join(ROOT, 'policy/policy.yaml'), 'utf8')}
  - id: siem-reads-audit
    effect: allow
    subject: ${id('siem')}
    org: '*'
    object: audit:log
    action: read
`,
    );
    policy = await createPolicyService({
      source: createFileSource({
        modelPath: join(ROOT, 'policy/model.conf'),
        policyPath: policyFile,
      }),
      logger: quietLogger,
      tokens: { issuer: idp.issuer, audience: 'urn:bulwark:inference', keys: idp.keys },
      watch: false,
    });
    policyServer = createMeshServer({
      tls: pki.services.policy!,
      allowedPeers: [id('audit')],
      logger: quietLogger,
    });
    policy.addTo(policyServer);
    const policyAddress = (await policyServer.listen()).address;
    policyClient = createMeshClient(PolicyServiceClient, {
      address: policyAddress,
      tls: pemOf(pki, 'audit'),
      expectedServer: id('policy'),
      logger: quietLogger,
    });

    audit = await createAuditService({
      store: openSqliteStore({ path: join(dir, 'audit.db') }),
      signingKey: generateKeyPairSync('ed25519').privateKey,
      logger: quietLogger,
      checkpointIntervalMs: 0,
      readAuthorizer: policyReadAuthorizer({
        decide: promiseDecide(policyClient, 1000),
        tokens: createTokenVerifier({ issuer: idp.issuer, audience: AUDIENCE, keys: idp.keys }),
        // Every question reaches the policy service (the "policy down" case must not hit a cache).
        cacheMs: 0,
      }),
    });
    auditServer = createMeshServer({
      tls: pki.services.audit!,
      allowedPeers: [
        ...['inference', 'gateway', 'siem'].map(id),
        'spiffe://bulwark.local/partner/*',
      ],
      logger: quietLogger,
    });
    audit.addTo(auditServer);
    auditAddress = (await auditServer.listen()).address;

    for (let i = 0; i < 6; i++) {
      const org = i % 2 ? 'globex' : 'acme';
      await audit.log.append(
        AuditRecord.fromPartial({
          service: 'inference',
          eventType: EventType.EVENT_TYPE_INFERENCE,
          actor: { sub: `${org}/user${i}`, org },
          action: 'infer',
          target: { modelName: 'iris' },
          outcome: Outcome.OUTCOME_SUCCESS,
        }),
        id('inference'),
      );
    }
    // Leaf 6: a record of no organisation (a workload acting for itself).
    await audit.log.append(
      AuditRecord.fromPartial({
        service: 'gateway',
        eventType: EventType.EVENT_TYPE_ACCESS_LOG,
        actor: { peerSpiffeId: id('gateway') },
        action: 'route',
        outcome: Outcome.OUTCOME_SUCCESS,
      }),
      id('gateway'),
    );
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    policyClient.close();
    await auditServer.shutdown(100);
    await policyServer.shutdown(100).catch(() => undefined);
    await audit.close();
    await policy.close();
    await pki.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an acme auditor (token, role auditor, audit:read) reads acme records only', async () => {
    const gateway = client(pemOf(pki, 'gateway'));
    const res = await query(gateway, {}, await acmeAuditor());
    expect(res.entries).toHaveLength(3);
    expect(res.entries.every((e) => e.record?.actor?.org === 'acme')).toBe(true);
    const own = await query(gateway, { org: 'acme' }, await acmeAuditor());
    expect(own.entries).toHaveLength(3);
  });

  it('an acme auditor gets the record in an inclusion proof for acme, not for globex', async () => {
    const gateway = client(pemOf(pki, 'gateway'));
    const t = await acmeAuditor();
    expect((await proof(gateway, 0, t)).leafData.length).toBeGreaterThan(0);
    const other = await proof(gateway, 1, t);
    expect(other.leafData.length).toBe(0);
    expect(other.hashes.length).toBeGreaterThan(0);
    expect((await proof(gateway, 6, t)).leafData.length).toBe(0);
    expect((await proof(client(pemOf(pki, 'siem')), 6)).leafData.length).toBeGreaterThan(0);
  });

  it('a workload the policy lets read every organisation sees all records', async () => {
    const res = await query(client(pemOf(pki, 'siem')), {});
    expect(new Set(res.entries.map((e) => e.record?.actor?.org))).toEqual(
      new Set(['acme', 'globex', '']),
    );
  });

  it('refuses a workload the policy does not name (no token)', async () => {
    const err = await refusal(query(client(pemOf(pki, 'gateway')), {}));
    expect(err.code).toBe(status.PERMISSION_DENIED);
  });

  it('refuses an acme auditor asking for globex records', async () => {
    const err = await refusal(
      query(client(pemOf(pki, 'gateway')), { org: 'globex' }, await acmeAuditor()),
    );
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toMatch(/globex/);
  });

  it('refuses a token without the audit:read scope', async () => {
    const t = await acmeAuditor({ scope: 'model:infer' });
    const err = await refusal(query(client(pemOf(pki, 'gateway')), {}, t));
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toMatch(/audit:read/);
  });

  it('refuses a token minted for another audience', async () => {
    const t = await token(
      { sub: 'acme/carol', org: 'acme', roles: ['auditor'] },
      { audience: 'urn:bulwark:inference' },
    );
    const err = await refusal(query(client(pemOf(pki, 'gateway')), {}, t));
    expect(err.code).toBe(status.UNAUTHENTICATED);
  });

  it('refuses an expired token', async () => {
    const t = await token(
      { sub: 'acme/carol', org: 'acme', roles: ['auditor'] },
      { now: new Date(Date.now() - 3_600_000), lifetimeSec: 300 },
    );
    const err = await refusal(query(client(pemOf(pki, 'gateway')), {}, t));
    expect(err.code).toBe(status.UNAUTHENTICATED);
    expect(err.details).toMatch(/expired/);
  });

  it('refuses a token signed by a key the broker does not publish', async () => {
    const stranger = await createTestIssuer({ issuer: idp.issuer, audience: AUDIENCE });
    const t = await stranger.mint({
      sub: 'acme/carol',
      org: 'acme',
      roles: ['auditor'],
      scope: 'audit:read',
    });
    const err = await refusal(query(client(pemOf(pki, 'gateway')), {}, t));
    expect(err.code).toBe(status.UNAUTHENTICATED);
  });

  it('refuses a user without the auditor role, even with audit:read', async () => {
    const t = await token({ sub: 'acme/bob', org: 'acme', roles: ['analyst'] });
    const err = await refusal(query(client(pemOf(pki, 'gateway')), {}, t));
    expect(err.code).toBe(status.PERMISSION_DENIED);
  });

  it('a certificate-bound token reads only over its own certificate', async () => {
    const reviewer = pki.clients['acme/reviewer']!;
    const t = await acmeAuditor({ cnf: { 'x5t#S256': certificateThumbprint(reviewer.certPem) } });
    const own = await query(client(reviewer), {}, t);
    expect(own.entries.length).toBeGreaterThan(0);
    const err = await refusal(query(client(pki.clients['acme/intruder']!), {}, t));
    expect(err.code).toBe(status.UNAUTHENTICATED);
    expect(err.details).toMatch(/different client certificate/);
    // A partner client must bind its token at all.
    const unbound = await refusal(query(client(reviewer), {}, await acmeAuditor()));
    expect(unbound.code).toBe(status.UNAUTHENTICATED);
  });

  it('fails closed when the policy service is down', async () => {
    await policyServer.shutdown(100);
    const t = await acmeAuditor();
    const err = await refusal(query(client(pemOf(pki, 'gateway')), {}, t));
    expect(err.code).toBe(status.UNAVAILABLE);
    const siem = await refusal(query(client(pemOf(pki, 'siem')), {}));
    expect(siem.code).toBe(status.UNAVAILABLE);
  });
});
