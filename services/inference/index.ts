/** Public surface of the inference service. */
export { InferenceError, type InferenceErrorCode } from './errors.ts';
export {
  createInferenceService,
  type InferenceService,
  type InferenceServiceOptions,
} from './server/create-inference-service.ts';
export {
  createModelRegistry,
  type ModelRegistry,
  type ModelInfo,
} from './registry/model-registry.ts';
export { type AuditClient, type AuditReceipt } from './guards/audit-guard.ts';
export { type PolicyClient } from './guards/policy-guard.ts';
export { DEFAULT_TIER_QUOTAS, type TierQuota } from './guards/quota.ts';
export { promisePolicyClient, promiseAuditClient } from './server/grpc-clients.ts';
export {
  generateSignerKey,
  keyIdOf,
  loadTrustedKey,
  signManifest,
  verifyManifestSignature,
  type SignerKeyPair,
} from './bundle/signing.ts';
export { readBundleDir, writeBundleDir, signBundle } from './bundle/bundle-files.ts';
export { verifyBundleFiles, type VerifiedBundle, type VerifyOptions } from './bundle/verify.ts';
export {
  parseManifest,
  type ModelManifest,
  MANIFEST_FILE,
  SIGNATURE_FILE,
  MODEL_FILE,
} from './bundle/manifest.ts';
export { buildDemoBundles, type DemoBundle } from './demo/build.ts';
export {
  createWithheldQueue,
  isAmbiguousAppendFailure,
  WITHHELD_REASON,
  type WithheldQueue,
  type WithheldQueueOptions,
} from './guards/withheld-answers.ts';
export {
  bundleDirsOf,
  registerConfiguredModels,
  type ConfiguredModel,
} from './registry/configured-models.ts';
export {
  gatewayHeaderMismatch,
  MODEL_HEADER,
  MODEL_VERSION_HEADER,
  BATCH_SIZE_HEADER,
} from './server/gateway-headers.ts';
export { fetchWithCa } from './server/jwks-fetch.ts';
export { channelOptions } from './client/connect.ts';
