/** Bulwark's audit service: a tamper-evident Merkle log with signed checkpoints and proofs. */
export { AuditError, type AuditErrorCode } from './errors.ts';
export { createAuditService, type AuditService, type AuditServiceOptions } from './service.ts';
export {
  ALL_ORGS,
  allowListReadAuthorizer,
  firstGrant,
  grantCovers,
  type ReadAuthorizer,
  type ReadCaller,
  type ReadGrant,
} from './read-authorizer.ts';
export {
  policyReadAuthorizer,
  promiseDecide,
  type PolicyReadAuthorizerOptions,
} from './policy-read-authorizer.ts';
export {
  openAuditLog,
  type AuditLog,
  type AuditLogOptions,
  type AppendReceipt,
  type SignedCheckpoint,
} from './log.ts';
export { openSqliteStore, type SqliteStoreOptions } from './store/sqlite-store.ts';
export { openPostgresStore, type PostgresStoreOptions } from './store/postgres-store.ts';
export type { AuditStore } from './store/types.ts';
export {
  hashLeaf,
  hashChildren,
  verifyInclusion,
  verifyConsistency,
  EMPTY_ROOT,
  type Hash,
} from './merkle.ts';
export {
  createNoteSigner,
  signNote,
  openNote,
  openCheckpoint,
  parseCheckpoint,
  formatCheckpoint,
  parseVerifierKey,
  formatVerifierKey,
  type Checkpoint,
} from './note.ts';
export { canonicalize } from './jcs.ts';
export { recordToLeaf, leafToRecord, DEFAULT_RECORD_LIMITS, type RecordLimits } from './record.ts';
export { verifyStore, verifyLeaves, type VerifyResult } from './verify.ts';
export { loadOrCreateSigningKey } from './signing-key.ts';
export { accessLogEntryToRecord, loadAccessLogService } from './access-log.ts';
export { exportLog, readExport, type ExportHeader } from './export.ts';
export { auditMetrics } from './metrics.ts';
