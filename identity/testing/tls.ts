import { randomBytes } from 'node:crypto';
import { createMeshCa, parseSpiffeId } from '../../mesh/ca/index.ts';

/** A PEM certificate with its PEM (PKCS#8) private key. */
export interface TestCertificate {
  cert: string;
  key: string;
}

/** The mesh CA as the identity tests use it: in memory, nothing written to disk. */
export interface TestCa {
  /** The CA certificate (PEM), to trust. */
  cert: string;
  /** Issues a workload certificate that serves `localhost` and `127.0.0.1`. */
  server(name?: string): Promise<TestCertificate>;
  /** Issues a partner client certificate for `spiffe://<td>/partner/<org>/<name>`. */
  client(spiffeId: string): Promise<TestCertificate>;
}

/**
 * Creates a mesh CA (ECDSA P-256, `bulwark.local`) for a test run; keys exist only in memory.
 *
 * @example
 * ```ts
 * const ca = await createTestCa();
 * const { cert, key } = await ca.server('identity');
 * ```
 */
export async function createTestCa(): Promise<TestCa> {
  const ca = await createMeshCa();
  return {
    cert: ca.certificatePem,
    async server(name = `idp-${randomBytes(3).toString('hex')}`) {
      const issued = await ca.issueService(name, {
        dnsNames: ['localhost'],
        ipAddresses: ['127.0.0.1'],
      });
      return { cert: issued.certificatePem, key: issued.privateKeyPem };
    },
    async client(spiffeId) {
      const [kind, org, name] = parseSpiffeId(spiffeId).path;
      if (kind !== 'partner' || !org || !name)
        throw new Error(`not a partner SPIFFE ID: ${spiffeId}`);
      const issued = await ca.issuePartner(org, name);
      return { cert: issued.certificatePem, key: issued.privateKeyPem };
    },
  };
}
