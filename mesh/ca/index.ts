/**
 * Mesh CA: an ECDSA P-256 root that issues X.509-SVID workload certificates
 * (`spiffe://<trust-domain>/svc/<name>`) and partner client certificates
 * (`spiffe://<trust-domain>/partner/<org>/<name>`), written as PEM files.
 */
export { CaError, type CaErrorCode } from './ca-error.ts';
export {
  createMeshCa,
  loadMeshCa,
  type IssueOptions,
  type IssuedCertificate,
  type MeshCa,
  type MeshCaOptions,
} from './authority.ts';
export {
  DEFAULT_TRUST_DOMAIN,
  parseSpiffeId,
  partnerSpiffeId,
  serviceSpiffeId,
  type ParsedSpiffeId,
} from './spiffe-id.ts';
export {
  certificateDer,
  certificateThumbprint,
  spiffeIdOf,
  uriSansOf,
  type CertificateInput,
} from './svid.ts';
export {
  caFiles,
  partnerFiles,
  readCaFiles,
  serviceFiles,
  writeCaFiles,
  writeIssuedFiles,
  type CertificateFiles,
} from './files.ts';
export {
  createTestPki,
  issueUncheckedCertificate,
  type TestPki,
  type TestPkiOptions,
  type TestWorkload,
  type UncheckedCertificateSpec,
} from './testing.ts';
