import { X509Certificate } from 'node:crypto';
import type { X509Certificate as PeculiarCertificate } from '@peculiar/x509';
import { createMeshCa, loadMeshCa } from './authority.ts';
import { CaError } from './ca-error.ts';
import { x509 } from './x509.ts';

const HOUR = 3_600_000;
const frozen = new Date('2026-03-01T12:00:00Z');
const now = () => frozen;

function extensionsOf(pem: string): PeculiarCertificate {
  return new x509.X509Certificate(pem);
}

describe('mesh CA', () => {
  it('creates an ECDSA P-256 root that names its trust domain', async () => {
    const ca = await createMeshCa({ trustDomain: 'example.test', now });
    const root = new X509Certificate(ca.certificatePem);
    expect(root.ca).toBe(true);
    expect(root.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(root.subjectAltName).toBe('URI:spiffe://example.test');
    expect(root.verify(root.publicKey)).toBe(true);
    const usage = extensionsOf(ca.certificatePem).getExtension(x509.KeyUsagesExtension);
    expect(usage?.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  });

  it('issues a 24 h service X.509-SVID with one URI SAN and loopback names', async () => {
    const ca = await createMeshCa({ now });
    const issued = await ca.issueService('audit');
    const cert = new X509Certificate(issued.certificatePem);
    expect(issued.spiffeId).toBe('spiffe://bulwark.local/svc/audit');
    expect(cert.subjectAltName).toBe(
      'URI:spiffe://bulwark.local/svc/audit, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
    );
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(cert.checkIssued(new X509Certificate(ca.certificatePem))).toBe(true);
    expect(cert.verify(new X509Certificate(ca.certificatePem).publicKey)).toBe(true);
    expect(issued.notAfter.getTime() - frozen.getTime()).toBe(24 * HOUR);
    expect(new Date(cert.validTo).getTime()).toBe(frozen.getTime() + 24 * HOUR);
    const ext = extensionsOf(issued.certificatePem);
    const keyUsage = ext.getExtension(x509.KeyUsagesExtension);
    expect(keyUsage?.usages).toBe(x509.KeyUsageFlags.digitalSignature);
    expect(keyUsage?.critical).toBe(true);
    expect(ext.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(false);
    expect(issued.privateKeyPem.startsWith(`-----BEGIN ${'PRIVATE'} KEY-----`)).toBe(true);
  });

  it('issues partner client certificates for client authentication only', async () => {
    const ca = await createMeshCa({ now });
    const issued = await ca.issuePartner('acme', 'scorer', { lifetimeHours: 2 });
    const cert = new X509Certificate(issued.certificatePem);
    expect(cert.subjectAltName).toBe('URI:spiffe://bulwark.local/partner/acme/scorer');
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(issued.notAfter.getTime() - frozen.getTime()).toBe(2 * HOUR);
  });

  it('never issues past the root’s own expiry', async () => {
    const ca = await createMeshCa({ now, rootLifetimeDays: 0.5 });
    const issued = await ca.issueService('policy');
    expect(issued.notAfter.getTime()).toBe(
      new X509Certificate(ca.certificatePem).validToDate.getTime(),
    );
  });

  it('rejects bad names, trust domains and lifetimes with stable codes', async () => {
    const ca = await createMeshCa({ now });
    await expect(ca.issueService('Audit')).rejects.toMatchObject({ code: 'ERR_CA_INVALID_NAME' });
    await expect(ca.issueService('a/b')).rejects.toBeInstanceOf(CaError);
    await expect(ca.issuePartner('acme', '')).rejects.toMatchObject({
      code: 'ERR_CA_INVALID_NAME',
    });
    await expect(ca.issueService('audit', { lifetimeHours: 0 })).rejects.toMatchObject({
      code: 'ERR_CA_INVALID_OPTION',
    });
    await expect(createMeshCa({ trustDomain: 'Bad Domain' })).rejects.toMatchObject({
      code: 'ERR_CA_INVALID_TRUST_DOMAIN',
    });
  });

  it('loads a saved CA, reads its trust domain and keeps issuing under the same root', async () => {
    const ca = await createMeshCa({ trustDomain: 'mesh.example', now });
    const loaded = await loadMeshCa({
      certificatePem: ca.certificatePem,
      privateKeyPem: await ca.exportPrivateKeyPem(),
      now,
    });
    expect(loaded.trustDomain).toBe('mesh.example');
    const issued = await loaded.issueService('gateway');
    expect(issued.spiffeId).toBe('spiffe://mesh.example/svc/gateway');
    const root = new X509Certificate(ca.certificatePem);
    expect(new X509Certificate(issued.certificatePem).verify(root.publicKey)).toBe(true);
    await expect(
      loadMeshCa({ certificatePem: 'not pem', privateKeyPem: 'nor this' }),
    ).rejects.toMatchObject({ code: 'ERR_CA_FILE_UNREADABLE' });
  });
});
