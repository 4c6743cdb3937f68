/**
 * The inference guard pipeline, in the design's order: transport, token, policy, quota,
 * input validation, run, output hardening, extraction monitor, audit. Each step fails closed
 * with its own status; every answer and every refusal is audited, and an answer leaves only
 * after its audit record was acknowledged.
 */
import { createHash } from 'node:crypto';
import { trace } from '@opentelemetry/api';
import type { Metadata } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  ModelInferRequest,
  ModelInferResponse,
  type InferParameter,
} from '../../../gen/inference/grpc_service.ts';
import type { PeerIdentity } from '../../../mesh/kit/index.ts';
import { BulwarkError } from '../../../mesh/errors.ts';
import type { ModelManifest } from '../bundle/manifest.ts';
import { InferenceError, invalidInput } from '../errors.ts';
import { malformedReason } from './tolerant-decode.ts';
import { gatewayHeaderMismatch } from './gateway-headers.ts';
import { EventType, Outcome, type Auditor, type AuditReceipt } from '../guards/audit-guard.ts';
import type { ExtractionMonitor } from '../guards/extraction-monitor.ts';
import type { OutputHardener } from '../guards/output-hardening.ts';
import type { PolicyGuard } from '../guards/policy-guard.ts';
import type { QuotaGuard } from '../guards/quota.ts';
import { requireScope, type Caller, type TokenGuard } from '../guards/token-guard.ts';
import type { ModelRegistry } from '../registry/model-registry.ts';
import { fromOrt, toOrt } from '../runtime/convert.ts';
import { peerIp } from './peer-address.ts';
import { encodeRaw, encodeTyped, type Tensor } from '../tensor/codec.ts';
import { validateInferRequest, type ValidationLimits } from '../tensor/validate.ts';

export interface PipelineDeps {
  registry: ModelRegistry;
  tokens: TokenGuard;
  policy: PolicyGuard;
  quota: QuotaGuard;
  hardener: OutputHardener;
  extraction: ExtractionMonitor;
  auditor: Auditor;
  limits: ValidationLimits;
  deadlineMs: number;
  requireClientCertificate: boolean;
  logger: Logger;
  now: () => number;
}

/** What the pipeline reads from a gRPC call. */
export interface CallContext {
  metadata: Metadata;
  peer: PeerIdentity;
  /** Absolute deadline of the call in ms, or Infinity. */
  deadline: number;
}

const sha256 = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const str = (value: string): InferParameter => ({
  parameterChoice: { $case: 'stringParam', value },
});

function statusOutcome(err: unknown): Outcome {
  const code = err instanceof BulwarkError ? err.code : '';
  return /UNAVAILABLE|DEADLINE|RUN_FAILED/.test(code) || !code
    ? Outcome.OUTCOME_ERROR
    : Outcome.OUTCOME_DENIED;
}

function traceIds(): { traceId: string; spanId: string } {
  const ctx = trace.getActiveSpan()?.spanContext();
  return ctx && ctx.traceId !== '00000000000000000000000000000000'
    ? { traceId: ctx.traceId, spanId: ctx.spanId }
    : { traceId: '', spanId: '' };
}

/** Authenticates a call (steps 1 and 2) and checks the scope. */
export async function authenticate(
  deps: PipelineDeps,
  ctx: CallContext,
  scope: string,
): Promise<Caller> {
  if (deps.requireClientCertificate && !ctx.peer.spiffeId) {
    throw new InferenceError('ERR_INFERENCE_UNAUTHENTICATED', 'a client certificate is required');
  }
  const auth = ctx.metadata.get('authorization')[0];
  const caller = await deps.tokens.verify(
    typeof auth === 'string' ? auth : auth?.toString(),
    ctx.peer,
  );
  requireScope(caller, scope);
  return caller;
}

/** Scales the first 2-D numeric input's rows to [0, 1] by the manifest ranges (for the monitor). */
function scaledRows(manifest: ModelManifest, inputs: Tensor[]): number[][] {
  const spec = manifest.inputs[0];
  const t = inputs[0];
  if (!spec || !t || t.shape.length !== 2 || !(t.datatype === 'FP32' || t.datatype === 'FP64'))
    return [];
  const [rows, width] = t.shape as [number, number];
  const data = t.data as Float32Array;
  return Array.from({ length: rows }, (_, r) =>
    Array.from({ length: width }, (_, c) => {
      const range = spec.featureRanges?.[c] ?? spec.range;
      const v = data[r * width + c]!;
      return range && range.max > range.min ? (v - range.min) / (range.max - range.min) : v;
    }),
  );
}

function predictedLabels(manifest: ModelManifest, outputs: Tensor[], rows: number): number[] {
  const labelSpec = manifest.outputs.find((o) => o.labels && o.datatype === 'INT64');
  const label = labelSpec && outputs.find((o) => o.name === labelSpec.name);
  if (label) return Array.from(label.data as BigInt64Array, Number);
  const score = outputs.find((o) => o.datatype === 'FP32' && o.shape.length === 2);
  if (!score) return new Array<number>(rows).fill(0);
  const width = score.shape[1]!;
  const d = score.data as Float32Array;
  return Array.from({ length: rows }, (_, r) => {
    const row = Array.from(d.subarray(r * width, (r + 1) * width));
    return row.indexOf(Math.max(...row));
  });
}

/**
 * Runs one ModelInfer call through every guard.
 *
 * @example
 * ```ts
 * const response = await runInferPipeline(deps, { metadata, peer, deadline }, request);
 * ```
 */
export async function runInferPipeline(
  deps: PipelineDeps,
  ctx: CallContext,
  req: ModelInferRequest,
): Promise<ModelInferResponse> {
  const started = deps.now();
  const ids = traceIds();
  let caller: Caller | undefined;
  let manifest: ModelManifest | undefined;
  let bundleSha256 = '';
  let revision = '';
  const inputDigest = sha256(ModelInferRequest.encode(req).finish());
  const audit = (
    outcome: Outcome,
    reason: string,
    extra: {
      outputDigest?: string;
      action?: string;
      attributes?: Record<string, string>;
      answer?: boolean;
    } = {},
  ) =>
    deps.auditor.record(
      {
        eventType: EventType.EVENT_TYPE_INFERENCE,
        action: extra.action ?? 'infer',
        outcome,
        reason,
        actor: {
          // Before the token is verified nothing about the caller is trustworthy.
          sub: caller?.subject ?? (ctx.peer.spiffeId ? '' : 'anonymous'),
          org: caller?.org ?? '',
          clientId: caller?.clientId ?? '',
          peerSpiffeId: ctx.peer.spiffeId ?? '',
          sourceAddress: peerIp(ctx.peer.address),
        },
        target: {
          modelName: manifest?.name ?? req.modelName.slice(0, 128),
          modelVersion: manifest?.version ?? req.modelVersion.slice(0, 64),
          bundleDigest: bundleSha256 ? `sha256:${bundleSha256}` : '',
        },
        policyRevision: revision,
        inputDigest,
        outputDigest: extra.outputDigest ?? '',
        latencyUs: Math.round((deps.now() - started) * 1000),
        ...ids,
        attributes: { request_id: req.id.slice(0, 128), ...extra.attributes },
      },
      { answer: extra.answer ?? false },
    );

  try {
    // 1-2: transport and token.
    caller = await authenticate(deps, ctx, 'model:infer');
    const malformed = malformedReason(req);
    if (malformed) throw invalidInput(malformed);
    // What the gateway's ext_authz decided on must be what is run.
    const mismatch = gatewayHeaderMismatch(ctx.metadata, req);
    if (mismatch) throw invalidInput(mismatch);
    const runner = deps.registry.resolve(req.modelName, req.modelVersion, caller.subject);
    manifest = runner.bundle.manifest;
    bundleSha256 = runner.bundle.bundleSha256;
    // 3: policy.
    const verdict = await deps.policy.check({
      caller,
      object: `model:${manifest.name}@${manifest.version}`,
      action: 'infer',
      riskTier: manifest.riskTier,
      // Validation comes later: clamp what the caller claims to the attribute's uint32 range.
      batchSize: Math.min(0xffffffff, Math.max(1, Number(req.inputs[0]?.shape[0] ?? 1) || 1)),
      ...(ctx.peer.spiffeId ? { peerSpiffeId: ctx.peer.spiffeId } : {}),
      sourceAddress: peerIp(ctx.peer.address),
    });
    revision = verdict.revision;
    // 4: quota.
    deps.quota.take(caller.subject, manifest.name, manifest.riskTier);
    // 5: input.
    const valid = validateInferRequest(req, manifest, deps.limits);
    // A client the extraction monitor blocked or throttles is refused before any compute.
    deps.extraction.admit(caller.subject, manifest.name);
    // 6: run.
    const deadline = Math.min(ctx.deadline, started + deps.deadlineMs);
    const feeds = Object.fromEntries(valid.inputs.map((t) => [t.name, toOrt(t)]));
    const results = await runner.run(feeds, deadline, deps.now);
    const outputs = Object.entries(results).map(([name, t]) => fromOrt(name, t));
    // 7: output hardening.
    const hardened = deps.hardener.harden(manifest, outputs, valid.outputs, caller.subject);
    // 8: extraction monitor (on the exact model answers, not the hardened ones).
    const rows = scaledRows(manifest, valid.inputs);
    const watch =
      rows.length > 0
        ? deps.extraction.observe(
            caller.subject,
            manifest.name,
            rows,
            predictedLabels(manifest, outputs, rows.length),
          )
        : undefined;
    if (watch?.transition) {
      await audit(
        Outcome.OUTCOME_SUCCESS,
        `extraction monitor: ${watch.transition.from} -> ${watch.transition.to}`,
        {
          action: `extraction.${watch.transition.to}`,
          attributes: {
            statistic: watch.transition.statistic.toFixed(4),
            samples: String(watch.transition.samples),
          },
        },
      );
      deps.logger.warn(
        { subject: caller.subject, model: manifest.name, ...watch.transition },
        'extraction monitor state changed',
      );
    }
    // Build the response, then 9: audit before answer.
    const raw = valid.raw || hardened.outputs.some((t) => t.datatype === 'FP16');
    const response: ModelInferResponse = {
      modelName: manifest.name,
      modelVersion: manifest.version,
      id: req.id,
      parameters: {},
      outputs: hardened.outputs.map((t) => ({
        name: t.name,
        datatype: t.datatype,
        shape: t.shape,
        parameters: {},
        contents: raw ? undefined : encodeTyped(t),
      })),
      rawOutputContents: raw ? hardened.outputs.map(encodeRaw) : [],
    };
    const attributes: Record<string, string> = { risk_tier: manifest.riskTier };
    if (hardened.privacy) attributes['epsilon'] = String(hardened.privacy.epsilon);
    if (watch && watch.state !== 'normal') attributes['extraction_state'] = watch.state;
    const receipt: AuditReceipt = await audit(
      Outcome.OUTCOME_SUCCESS,
      verdict.matchedRule || 'allowed',
      {
        outputDigest: sha256(ModelInferResponse.encode(response).finish()),
        attributes,
        answer: true,
      },
    );
    response.parameters['bulwark.audit.log_id'] = str(receipt.logId);
    response.parameters['bulwark.audit.leaf_index'] = {
      parameterChoice: { $case: 'int64Param', value: receipt.leafIndex },
    };
    response.parameters['bulwark.model.bundle_sha256'] = str(bundleSha256);
    if (hardened.privacy) {
      response.parameters['bulwark.privacy.epsilon_spent'] = {
        parameterChoice: { $case: 'doubleParam', value: hardened.privacy.spent },
      };
      response.parameters['bulwark.privacy.epsilon_remaining'] = {
        parameterChoice: { $case: 'doubleParam', value: hardened.privacy.remaining },
      };
    }
    if (watch && watch.state !== 'normal')
      response.parameters['bulwark.extraction.state'] = str(watch.state);
    return response;
  } catch (err) {
    if (err instanceof InferenceError && err.code === 'ERR_INFERENCE_AUDIT_UNAVAILABLE') throw err;
    const code = err instanceof BulwarkError ? err.code : 'ERR_INTERNAL';
    try {
      await audit(statusOutcome(err), code, {
        attributes: err instanceof BulwarkError ? { detail: err.message.slice(0, 1000) } : {},
      });
    } catch (auditErr) {
      // The refusal still goes out (it answers nothing); the gap is logged loudly.
      deps.logger.error({ err: auditErr, code }, 'could not audit a refused inference call');
    }
    throw err;
  }
}
