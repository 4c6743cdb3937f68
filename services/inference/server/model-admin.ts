/**
 * `bulwark.model.v1.ModelService`: register, list, get, canary, promote, rollback. Every call
 * needs the `model:admin` scope and a policy allow for action `admin` on `model:<name>`; every
 * change is audited before it takes effect, and refused attempts are audited too.
 */
import type { ServerUnaryCall } from '@grpc/grpc-js';
import {
  RiskTier,
  type Model,
  type ModelServiceServer,
  type PromoteModelRequest,
  type RollbackModelRequest,
  type SetCanaryRequest,
} from '../../../gen/bulwark/model/v1/model.ts';
import { BulwarkError } from '../../../mesh/errors.ts';
import { unaryHandler } from '../../../mesh/kit/index.ts';
import { EventType, Outcome } from '../guards/audit-guard.ts';
import { InferenceError } from '../errors.ts';
import type { RiskTier as RiskTierName } from '../bundle/manifest.ts';
import type { Caller } from '../guards/token-guard.ts';
import type { ModelInfo, RoutingChange } from '../registry/model-registry.ts';
import { authenticate, type PipelineDeps } from './infer-pipeline.ts';
import { callContext } from './call-context.ts';
import { peerIp } from './peer-address.ts';

const TIERS = {
  low: RiskTier.RISK_TIER_LOW,
  medium: RiskTier.RISK_TIER_MEDIUM,
  high: RiskTier.RISK_TIER_HIGH,
} as const;

export function toModelMessage(m: ModelInfo): Model {
  return {
    name: m.name,
    versions: m.versions.map((v) => ({
      version: v.version,
      bundleSha256: v.bundleSha256,
      riskTier: TIERS[v.riskTier],
      signerKeyId: v.signerKeyId,
      registeredAt: v.registeredAt.toISOString(),
    })),
    stableVersion: m.stable,
    canaryVersion: m.canary,
    canaryPercent: m.canaryPercent,
    previousStableVersion: m.previousStable,
  };
}

/** Builds the ModelService implementation. */
export function createModelAdminHandlers(deps: PipelineDeps): ModelServiceServer {
  const opts = { logger: deps.logger };

  /** Authenticates, asks policy, runs `act` (which audits its own success), audits refusals. */
  async function admin<Res>(
    call: ServerUnaryCall<unknown, Res>,
    action: string,
    modelName: () => string,
    act: (tools: {
      caller: Caller;
      /** Asks policy for `admin` on `model:<name>`; throws PERMISSION_DENIED. */
      authorize: (name: string, tier?: RiskTierName) => Promise<void>;
      audit: (
        reason: string,
        attrs?: Record<string, string>,
        target?: { version: string; digest: string },
      ) => Promise<void>;
    }) => Promise<Res>,
  ): Promise<Res> {
    const ctx = callContext(call);
    let caller: Caller | undefined;
    let revision = '';
    const record = (
      outcome: Outcome,
      reason: string,
      attrs: Record<string, string> = {},
      target?: { version: string; digest: string },
    ) =>
      deps.auditor.record({
        eventType: EventType.EVENT_TYPE_MODEL_ADMIN,
        action: `model.${action}`,
        outcome,
        reason,
        actor: {
          sub: caller?.subject ?? (ctx.peer.spiffeId ? '' : 'anonymous'),
          org: caller?.org ?? '',
          clientId: caller?.clientId ?? '',
          peerSpiffeId: ctx.peer.spiffeId ?? '',
          sourceAddress: peerIp(ctx.peer.address),
        },
        target: {
          modelName: safeName(modelName()),
          modelVersion: target?.version ?? '',
          bundleDigest: target?.digest ? `sha256:${target.digest}` : '',
        },
        policyRevision: revision,
        attributes: attrs,
      });
    try {
      caller = await authenticate(deps, ctx, 'model:admin');
      const who = caller;
      const authorize = async (name: string, tier?: RiskTierName) => {
        revision = (
          await deps.policy.check({
            caller: who,
            object: `model:${name}`,
            action: 'admin',
            // An unknown model is judged as the highest tier.
            riskTier: tier ?? deps.registry.get(name)?.versions[0]?.riskTier ?? 'high',
            ...(ctx.peer.spiffeId ? { peerSpiffeId: ctx.peer.spiffeId } : {}),
            sourceAddress: peerIp(ctx.peer.address),
          })
        ).revision;
      };
      return await act({
        caller,
        authorize,
        audit: (reason, attrs, target) =>
          record(Outcome.OUTCOME_SUCCESS, reason, attrs, target).then(() => undefined),
      });
    } catch (err) {
      const code = err instanceof BulwarkError ? err.code : 'ERR_INTERNAL';
      if (code !== 'ERR_INFERENCE_AUDIT_UNAVAILABLE') {
        await record(
          /UNAVAILABLE/.test(code) ? Outcome.OUTCOME_ERROR : Outcome.OUTCOME_DENIED,
          code,
          {
            detail: err instanceof Error ? err.message.slice(0, 1000) : '',
          },
        ).catch((auditErr: unknown) =>
          deps.logger.error({ err: auditErr }, 'could not audit a refused admin call'),
        );
      }
      throw err;
    }
  }

  const routingCall = <Req extends { name: string }>(
    action: string,
    change: (req: Req) => RoutingChange,
  ) =>
    unaryHandler<Req, { model: Model | undefined }>(
      async (call) =>
        admin(
          call,
          action,
          () => call.request.name,
          async ({ authorize, audit }) => {
            await authorize(call.request.name);
            const planned = deps.registry.plan(call.request.name, change(call.request));
            await audit(action, {
              stable: planned.stable,
              canary: planned.canary,
              canary_percent: String(planned.canaryPercent),
            });
            return { model: toModelMessage(await deps.registry.apply(call.request.name, planned)) };
          },
        ),
      opts,
    );

  return {
    registerModel: unaryHandler(async (call) => {
      let name = '';
      return admin(
        call,
        'register',
        () => name,
        async ({ authorize, audit }) => {
          const files = new Map(
            call.request.files.map((f) => [f.path, new Uint8Array(f.content)] as const),
          );
          // Verify (pure, nothing loaded), then ask policy, then load into onnxruntime.
          const bundle = deps.registry.verify(files);
          name = bundle.manifest.name;
          await authorize(name, bundle.manifest.riskTier);
          const prepared = await deps.registry.load(bundle);
          try {
            await audit(
              'registered',
              { signer: prepared.bundle.signerKeyId, risk_tier: prepared.bundle.manifest.riskTier },
              {
                version: prepared.bundle.manifest.version,
                digest: prepared.bundle.bundleSha256,
              },
            );
          } catch (err) {
            await deps.registry.discard(prepared);
            throw err;
          }
          const model = await deps.registry.commit(prepared, call.request.makeStable);
          const version = toModelMessage(model).versions.find(
            (v) => v.version === prepared.bundle.manifest.version,
          );
          return { model: toModelMessage(model), version };
        },
      );
    }, opts),
    listModels: unaryHandler(
      async (call) =>
        admin(
          call,
          'list',
          () => '',
          async ({ authorize }) => {
            // Only the models this caller may administer are listed.
            const visible = [];
            for (const m of deps.registry.list()) {
              try {
                await authorize(m.name);
                visible.push(toModelMessage(m));
              } catch (err) {
                if (!(
                  err instanceof BulwarkError && err.code === 'ERR_INFERENCE_PERMISSION_DENIED'
                ))
                  throw err;
              }
            }
            if (visible.length === 0 && deps.registry.list().length > 0) {
              throw new InferenceError(
                'ERR_INFERENCE_PERMISSION_DENIED',
                'policy allows admin on no registered model',
              );
            }
            return { models: visible };
          },
        ),
      opts,
    ),
    getModel: unaryHandler(
      async (call) =>
        admin(
          call,
          'get',
          () => call.request.name,
          async ({ authorize }) => {
            await authorize(call.request.name);
            deps.registry.resolve(call.request.name, '', '');
            return { model: toModelMessage(deps.registry.get(call.request.name)!) };
          },
        ),
      opts,
    ),
    setCanary: routingCall<SetCanaryRequest>('canary', (r) => ({
      kind: 'canary',
      version: r.canaryVersion,
      percent: r.percent,
    })),
    promoteModel: routingCall<PromoteModelRequest>('promote', (r) => ({
      kind: 'promote',
      version: r.version,
    })),
    rollbackModel: routingCall<RollbackModelRequest>('rollback', () => ({ kind: 'rollback' })),
  };
}

function safeName(name: string): string {
  return name.slice(0, 128);
}
