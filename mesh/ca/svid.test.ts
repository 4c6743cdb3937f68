import { createHash, X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { createMeshCa, type MeshCa } from './authority.ts';
import { parseSpiffeId, partnerSpiffeId, serviceSpiffeId } from './spiffe-id.ts';
import { certificateThumbprint, spiffeIdOf, uriSansOf } from './svid.ts';
import { issueUncheckedCertificate } from './testing.ts';

let ca: MeshCa;
let dir: string;

beforeAll(async () => {
  ca = await createMeshCa();
  dir = await mkdtemp(join(tmpdir(), 'bulwark-svid-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('spiffeIdOf', () => {
  it('reads the one URI SAN from PEM, DER and parsed certificates', async () => {
    const { certificatePem } = await ca.issueService('inference');
    const node = new X509Certificate(certificatePem);
    expect(spiffeIdOf(certificatePem)).toBe('spiffe://bulwark.local/svc/inference');
    expect(spiffeIdOf(node.raw)).toBe('spiffe://bulwark.local/svc/inference');
    expect(spiffeIdOf(node)).toBe('spiffe://bulwark.local/svc/inference');
    expect(spiffeIdOf({ raw: node.raw })).toBe('spiffe://bulwark.local/svc/inference');
  });

  it('refuses a certificate without a URI SAN', async () => {
    const none = await issueUncheckedCertificate(ca, dir, { stem: 'none', uris: [] });
    expect(() => spiffeIdOf(none.certPem)).toThrow(/has 0 URI SANs/);
  });

  it('refuses a certificate with two URI SANs', async () => {
    const two = await issueUncheckedCertificate(ca, dir, {
      stem: 'two',
      uris: [serviceSpiffeId('audit'), serviceSpiffeId('policy')],
    });
    expect(uriSansOf(two.certPem)).toHaveLength(2);
    expect(() => spiffeIdOf(two.certPem)).toThrow(
      expect.objectContaining({ code: 'ERR_CA_INVALID_SVID' }),
    );
  });

  it('refuses a URI SAN that is not a SPIFFE ID', async () => {
    const web = await issueUncheckedCertificate(ca, dir, {
      stem: 'web',
      uris: ['https://bulwark.local/svc/audit'],
    });
    expect(() => spiffeIdOf(web.certPem)).toThrow(/not a valid SPIFFE ID/);
  });

  it('computes the RFC 8705 x5t#S256 thumbprint over the DER', async () => {
    const { certificatePem } = await ca.issueService('audit');
    const der = new X509Certificate(certificatePem).raw;
    expect(certificateThumbprint(certificatePem)).toBe(
      createHash('sha256').update(der).digest('base64url'),
    );
  });
});

describe('SPIFFE IDs', () => {
  const name = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/);

  it('round-trips every valid service and partner name', () => {
    fc.assert(
      fc.property(name, name, (org, svc) => {
        expect(parseSpiffeId(serviceSpiffeId(svc)).path).toEqual(['svc', svc]);
        expect(parseSpiffeId(partnerSpiffeId(org, svc)).path).toEqual(['partner', org, svc]);
      }),
      { numRuns: 150 },
    );
  });

  it('rejects IDs with dot segments, queries, fragments or another scheme', () => {
    for (const bad of [
      'spiffe://bulwark.local/svc/../admin',
      'spiffe://bulwark.local/svc/a?x=1',
      'spiffe://bulwark.local/svc/a#b',
      'spiffe://bulwark.local',
      'spiffe://bulwark.local/',
      'spiffe://Bulwark.Local/svc/a',
      'spiffe://bulwark.local:443/svc/a',
      'https://bulwark.local/svc/a',
    ]) {
      expect(() => parseSpiffeId(bad)).toThrow(/not a valid SPIFFE ID/);
    }
  });
});
