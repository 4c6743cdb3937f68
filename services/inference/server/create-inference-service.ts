/**
 * `createInferenceService(options)`: the Open Inference Protocol v2 service and the model
 * admin service over one model registry, with the guard pipeline built from the options.
 * The service attaches itself to a server the caller made (a mesh server from `mesh/kit`,
 * usually with `clientCertificate: 'optional'` so partners can call with TLS + token).
 */
import type { KeyObject } from 'node:crypto';
import type { Server, ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import {
  ModelServiceService,
  type ModelServiceServer,
} from '../../../gen/bulwark/model/v1/model.ts';
import type { GRPCInferenceServiceServer } from '../../../gen/inference/grpc_service.ts';
import { tolerantInferenceDefinition } from './tolerant-decode.ts';
import { unaryHandler } from '../../../mesh/kit/index.ts';
import type { RiskTier } from '../bundle/manifest.ts';
import { createAuditor, type AuditClient } from '../guards/audit-guard.ts';
import {
  createExtractionMonitor,
  type ExtractionMonitorOptions,
} from '../guards/extraction-monitor.ts';
import { createWithheldQueue, type WithheldQueue } from '../guards/withheld-answers.ts';
import { createOutputHardener, type OutputHardenerOptions } from '../guards/output-hardening.ts';
import { createPolicyGuard, type PolicyClient } from '../guards/policy-guard.ts';
import { createQuotaGuard, type TierQuota } from '../guards/quota.ts';
import { createTokenGuard, type TokenGuardOptions } from '../guards/token-guard.ts';
import { createModelRegistry, type ModelRegistry } from '../registry/model-registry.ts';
import type { RunnerOptions } from '../runtime/model-runner.ts';
import { DEFAULT_VALIDATION_LIMITS, type ValidationLimits } from '../tensor/validate.ts';
import { callContext } from './call-context.ts';
import { peerIp } from './peer-address.ts';
import { authenticate, runInferPipeline, type PipelineDeps } from './infer-pipeline.ts';
import { createModelAdminHandlers } from './model-admin.ts';
import { InferenceError } from '../errors.ts';

export interface InferenceServiceOptions {
  /** Ed25519 keys trusted to sign model bundles. */
  trustedSignerKeys: readonly KeyObject[];
  /** Where registered bundles live (loaded on `start()`); omit to keep models in memory. */
  modelDir?: string;
  /** Token checks: issuer, JWKS key source, clock. Audience defaults to `urn:bulwark:inference`. */
  tokens: TokenGuardOptions;
  /** Policy decisions (a promisified `bulwark.policy.v1` client). */
  policy: PolicyClient;
  /** Audit log (a promisified `bulwark.audit.v1` client). */
  audit: AuditClient;
  /** Quotas per risk tier (defaults in `DEFAULT_TIER_QUOTAS`). */
  quotas?: Partial<Record<RiskTier, TierQuota>>;
  extraction?: ExtractionMonitorOptions;
  hardening?: OutputHardenerOptions;
  limits?: Partial<ValidationLimits>;
  runner?: RunnerOptions;
  allowedOperatorDomains?: readonly string[];
  /** Longest a ModelInfer may take, whatever the client's deadline. Default 2000 ms. */
  deadlineMs?: number;
  /** Refuse callers without a client certificate. Default false (TLS + token suffices). */
  requireClientCertificate?: boolean;
  /** Policy decision cache lifetime (the serving revision is polled besides). Default 5000 ms. */
  policyCacheTtlMs?: number;
  /** Audit acknowledgement timeout. Default 5000 ms. */
  auditTimeoutMs?: number;
  /**
   * File of the withheld-answer queue (answers whose audit acknowledgement was lost, see
   * `guards/withheld-answers.ts`); omit to keep that queue in memory only.
   */
  withheldFile?: string;
  /** Longest the withheld-answer queue may grow. Default 10000. */
  withheldMaxEntries?: number;
  logger?: Logger;
  now?: () => number;
}

export interface InferenceService {
  readonly registry: ModelRegistry;
  readonly inference: GRPCInferenceServiceServer;
  readonly modelAdmin: ModelServiceServer;
  /** Answers withheld because their audit acknowledgement was lost, not yet noted in the log. */
  readonly withheld: WithheldQueue;
  /** Loads stored bundles (refused ones are logged and skipped). */
  start(): Promise<void>;
  /** Registers both services on a server (a `MeshServer` or a plain grpc-js `Server`). */
  attach(
    server: { addService(d: ServiceDefinition, i: UntypedServiceImplementation): void } | Server,
  ): void;
  close(): Promise<void>;
}

/**
 * @example
 * ```ts
 * const service = createInferenceService({
 *   trustedSignerKeys: [loadTrustedKey(publisherPem)],
 *   modelDir: 'var/models',
 *   tokens: { issuer: 'https://localhost:8443', keys: createRemoteJWKSet(new URL(jwksUri)) },
 *   policy: policyClient,
 *   audit: auditClient,
 *   logger,
 * });
 * await service.start();
 * const server = createMeshServer({ tls, allowedPeers, clientCertificate: 'optional', logger });
 * service.attach(server);
 * await server.listen();
 * ```
 */
export function createInferenceService(options: InferenceServiceOptions): InferenceService {
  if (!options.trustedSignerKeys?.length) {
    throw new Error('createInferenceService: option "trustedSignerKeys" needs at least one key');
  }
  if (!options.policy) throw new Error('createInferenceService: option "policy" is required');
  if (!options.audit) throw new Error('createInferenceService: option "audit" is required');
  const now = options.now ?? (() => performance.timeOrigin + performance.now());
  const logger = (options.logger ?? pino({ level: 'info' })).child({ service: 'inference' });
  const registry = createModelRegistry({
    trustedKeys: options.trustedSignerKeys,
    ...(options.modelDir ? { modelDir: options.modelDir } : {}),
    ...(options.allowedOperatorDomains
      ? { allowedOperatorDomains: options.allowedOperatorDomains }
      : {}),
    ...(options.runner ? { runner: options.runner } : {}),
  });
  const auditor = createAuditor({
    client: options.audit,
    timeoutMs: options.auditTimeoutMs ?? 5000,
    withheld: () => withheld,
  });
  const withheld: WithheldQueue = createWithheldQueue({
    append: (record) => auditor.record(record),
    ...(options.withheldFile ? { file: options.withheldFile } : {}),
    ...(options.withheldMaxEntries ? { maxEntries: options.withheldMaxEntries } : {}),
    logger,
  });
  const deps: PipelineDeps = {
    registry,
    tokens: createTokenGuard(options.tokens),
    policy: createPolicyGuard({
      client: options.policy,
      cacheTtlMs: options.policyCacheTtlMs ?? 5000,
      now,
    }),
    quota: createQuotaGuard({ ...(options.quotas ? { tiers: options.quotas } : {}), now }),
    hardener: createOutputHardener({ now, ...options.hardening }),
    extraction: createExtractionMonitor({ now, ...options.extraction }),
    auditor,
    limits: { ...DEFAULT_VALIDATION_LIMITS, ...options.limits },
    deadlineMs: options.deadlineMs ?? 2000,
    requireClientCertificate: options.requireClientCertificate ?? false,
    logger,
    now,
  };
  const hopts = { logger };

  /** Metadata calls need a token with `model:infer` and a policy allow, but no quota or audit. */
  const modelFor = async (call: unknown, name: string, version: string) => {
    const ctx = callContext(call);
    const caller = await authenticate(deps, ctx, 'model:infer');
    const runner = registry.resolve(name, version, caller.subject);
    const { manifest } = runner.bundle;
    await deps.policy.check({
      caller,
      object: `model:${manifest.name}@${manifest.version}`,
      action: 'infer',
      riskTier: manifest.riskTier,
      // A metadata call carries no tensors: a batch of zero (policies may refuse requests that
      // state no batch size at all).
      batchSize: 0,
      ...(ctx.peer.spiffeId ? { peerSpiffeId: ctx.peer.spiffeId } : {}),
      sourceAddress: peerIp(ctx.peer.address),
    });
    return runner;
  };

  const inference: GRPCInferenceServiceServer = {
    serverLive: (_call, cb) => cb(null, { live: true }),
    serverReady: (_call, cb) => cb(null, { ready: registry.list().length > 0 }),
    serverMetadata: (_call, cb) =>
      cb(null, {
        name: 'bulwark-inference',
        version: '0.1.0',
        extensions: ['bulwark-audit-receipt'],
      }),
    modelReady: unaryHandler(async (call) => {
      try {
        await modelFor(call, call.request.name, call.request.version);
        return { ready: true };
      } catch (err) {
        if (err instanceof InferenceError && err.code === 'ERR_INFERENCE_MODEL_NOT_FOUND')
          return { ready: false };
        throw err;
      }
    }, hopts),
    modelMetadata: unaryHandler(async (call) => {
      const runner = await modelFor(call, call.request.name, call.request.version);
      const { manifest } = runner.bundle;
      const hidden = manifest.outputPolicy.labelOnly
        ? new Set(manifest.outputs.filter((o) => o.datatype.startsWith('FP')).map((o) => o.name))
        : new Set<string>();
      return {
        name: manifest.name,
        versions: registry.get(manifest.name)?.versions.map((v) => v.version) ?? [],
        platform: 'onnxruntime_onnx',
        inputs: manifest.inputs.map((t) => ({
          name: t.name,
          datatype: t.datatype,
          shape: t.shape,
        })),
        outputs: manifest.outputs
          .filter((t) => !hidden.has(t.name))
          .map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })),
      };
    }, hopts),
    modelInfer: unaryHandler(
      (call) => runInferPipeline(deps, callContext(call), call.request),
      hopts,
    ),
  };
  const modelAdmin = createModelAdminHandlers(deps);

  return {
    registry,
    inference,
    modelAdmin,
    withheld,
    async start() {
      await withheld.start();
      await registry.loadStored((dir, err) =>
        logger.error(
          { dir, code: (err as { code?: string }).code, reason: (err as Error).message },
          'refused a stored model bundle',
        ),
      );
    },
    attach(server) {
      server.addService(
        tolerantInferenceDefinition,
        inference as unknown as UntypedServiceImplementation,
      );
      server.addService(ModelServiceService, modelAdmin as unknown as UntypedServiceImplementation);
    },
    async close() {
      deps.policy.stop();
      await withheld.close();
      await registry.close();
    },
  };
}
