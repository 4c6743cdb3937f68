/** Public surface of the policy service. */
export { PolicyError, type PolicyErrorCode } from './errors.ts';
export {
  ATTRIBUTE_KINDS,
  RISK_TIERS,
  type AttributeName,
  type AttributeValues,
  type RequestAttributes,
  type RiskTierName,
} from './attributes.ts';
export { compileCondition, ConditionSyntaxError, type Condition } from './condition.ts';
export {
  compilePolicy,
  compilePolicyYaml,
  policyRevision,
  type CompiledPolicy,
  type CompiledRule,
  type Grant,
  type PolicyDocument,
} from './policy-document.ts';
export { validateModel, createReferenceEnforcer } from './casbin-model.ts';
export {
  createPolicyEngine,
  PolicyEngine,
  type Decision,
  type DecisionRequest,
  type Explanation,
  type RuleTrace,
} from './engine.ts';
export {
  createFileSource,
  type FileSourceOptions,
  type LoadedPolicy,
  type PolicySource,
} from './policy-source.ts';
export {
  createPolicyStore,
  PolicyStore,
  type PolicyStoreOptions,
  type ReloadEvent,
  type ReloadResult,
} from './policy-store.ts';
export {
  parseAttributeArgs,
  parsePolicyCases,
  runPolicyCases,
  type PolicyCase,
  type PolicyCaseResult,
} from './policy-cases.ts';
export {
  decideAndRecord,
  isSensitive,
  noAudit,
  type DecisionAuditor,
  type DecisionRecord,
} from './decision-record.ts';
export {
  createTokenVerifier,
  type TokenIdentity,
  type TokenVerifier,
  type TokenVerifierOptions,
} from './token-verifier.ts';
export {
  BATCH_SIZE_HEADER,
  MODEL_HEADER,
  MODEL_VERSION_HEADER,
  routeOf,
  type CheckRequest,
  type CheckResponse,
} from './ext-authz.ts';
export { loadEnvoyAuthorization } from './envoy-protos.ts';
export { createPolicyServiceImplementation } from './policy-grpc.ts';
export {
  createPolicyService,
  type PolicyService,
  type PolicyServiceOptions,
  type ServiceHost,
} from './service.ts';
export {
  createAuditAuditor,
  type AuditAuditor,
  type AuditAuditorOptions,
} from './audit-auditor.ts';
export {
  createPostgresSource,
  ensurePolicySchema,
  writePolicy,
  POLICY_CHANNEL,
  type PostgresSourceOptions,
} from './postgres-source.ts';
export { compilePolicyRows, policyRows, type PolicyRow } from './policy-document.ts';
