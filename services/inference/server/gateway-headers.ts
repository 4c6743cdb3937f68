/**
 * Behind Envoy, the policy service's ext_authz never sees a gRPC body: it decides on the
 * `x-bulwark-model`, `x-bulwark-model-version` and `x-bulwark-batch-size` headers the client
 * sends. A client could name an allowed model in the headers and another in the body, so
 * inference refuses a ModelInfer whose such headers, when present, disagree with the body.
 *
 * Identity headers (`x-bulwark-subject`, `x-bulwark-org`, `x-bulwark-policy-revision`) are
 * never read here or anywhere in the service: who the caller is comes from the verified token
 * and the TLS peer only.
 */
import type { Metadata } from '@grpc/grpc-js';
import type { ModelInferRequest } from '../../../gen/inference/grpc_service.ts';

export const MODEL_HEADER = 'x-bulwark-model';
export const MODEL_VERSION_HEADER = 'x-bulwark-model-version';
export const BATCH_SIZE_HEADER = 'x-bulwark-batch-size';

const shown = (v: string) => JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}...` : v);

/** One header value; a header sent twice is ambiguous (which one did the gateway read?). */
function single(metadata: Metadata, key: string): string | undefined | Error {
  const values = metadata.get(key);
  if (values.length === 0) return undefined;
  if (values.length > 1) return new Error(`header ${key} sent more than once`);
  const v = values[0]!;
  if (typeof v !== 'string') return new Error(`header ${key} must be text`);
  // grpc-js joins a repeated header with ", "; no model name, version or number holds a comma.
  if (v.includes(',')) return new Error(`header ${key} sent more than once`);
  return v;
}

/** The body's batch size: the first dimension every input shares, or undefined. */
function bodyBatch(req: ModelInferRequest): number | undefined {
  const firsts = new Set(req.inputs.map((t) => (t.shape.length ? Number(t.shape[0]) : NaN)));
  if (firsts.size !== 1) return undefined;
  const [n] = [...firsts];
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Returns why the gateway headers disagree with the body, or undefined when they agree or are
 * absent.
 *
 * @example
 * ```ts
 * const reason = gatewayHeaderMismatch(call.metadata, call.request);
 * if (reason) throw invalidInput(reason);
 * ```
 */
export function gatewayHeaderMismatch(
  metadata: Metadata,
  req: ModelInferRequest,
): string | undefined {
  const model = single(metadata, MODEL_HEADER);
  if (model instanceof Error) return model.message;
  if (model !== undefined && model !== req.modelName)
    return `header ${MODEL_HEADER} ${shown(model)} differs from model_name ${shown(req.modelName)}`;
  const version = single(metadata, MODEL_VERSION_HEADER);
  if (version instanceof Error) return version.message;
  if (version !== undefined && version !== req.modelVersion)
    return `header ${MODEL_VERSION_HEADER} ${shown(version)} differs from model_version ${shown(req.modelVersion)}`;
  const batch = single(metadata, BATCH_SIZE_HEADER);
  if (batch instanceof Error) return batch.message;
  if (batch !== undefined) {
    const body = bodyBatch(req);
    if (!/^\d{1,9}$/.test(batch) || Number(batch) !== body)
      return `header ${BATCH_SIZE_HEADER} ${shown(batch)} differs from the batch size of the inputs (${body ?? 'none'})`;
  }
  return undefined;
}
