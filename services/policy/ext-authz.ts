import type { Logger } from 'pino';
import { errorCode } from '../../mesh/errors.ts';
import { decideAndRecord, type DecisionAuditor } from './decision-record.ts';
import { structToJson, type StructValue } from './envoy-protos.ts';
import { PolicyError } from './errors.ts';
import type { PolicyStore } from './policy-store.ts';
import type { TokenIdentity, TokenVerifier } from './token-verifier.ts';
import { certificateThumbprintFromEnvoy } from './envoy-certificate.ts';

/** The part of Envoy's `CheckRequest` the handler reads (proto-loader, camelCase). */
export interface CheckRequest {
  attributes?: {
    source?: {
      address?: { socketAddress?: { address?: string } };
      principal?: string;
      /** URL-encoded PEM of the downstream client certificate, when Envoy forwards it. */
      certificate?: string;
    };
    request?: { http?: { method?: string; path?: string; headers?: Record<string, string> } };
    metadataContext?: { filterMetadata?: Record<string, StructValue> };
  };
}

interface HeaderOption {
  header: { key: string; value: string };
  appendAction?: string;
}

/** Envoy's `CheckResponse`, as proto-loader encodes it. */
export interface CheckResponse {
  status: { code: number; message?: string };
  okResponse?: { headers: HeaderOption[] };
  deniedResponse?: { status: { code: string }; headers: HeaderOption[]; body: string };
}

/** Options of {@link createCheckHandler}. */
export interface CheckHandlerOptions {
  store: PolicyStore;
  auditor: DecisionAuditor;
  /** Verifies bearer tokens when the gateway did not (no jwt_authn metadata). */
  verifier: TokenVerifier;
  logger: Logger;
  now: () => Date;
  /** Key of the payload in jwt_authn's metadata (`payload_in_metadata`). Default `jwt_payload`. */
  jwtPayloadKey?: string;
}

/** gRPC status codes used in `CheckResponse.status`. */
const GRPC = { OK: 0, PERMISSION_DENIED: 7, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;
const JWT_AUTHN = 'envoy.filters.http.jwt_authn';
const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const VERSION = /^[A-Za-z0-9._-]{1,64}$/;

/** Request headers the handler reads, documented for clients and the gateway config. */
export const MODEL_HEADER = 'x-bulwark-model';
export const MODEL_VERSION_HEADER = 'x-bulwark-model-version';
export const BATCH_SIZE_HEADER = 'x-bulwark-batch-size';

interface Route {
  model: string;
  version?: string;
  action: 'infer' | 'read' | 'admin';
}

const GRPC_ROUTES = new Map<string, Route['action']>([
  ['/inference.GRPCInferenceService/ModelInfer', 'infer'],
  ['/inference.GRPCInferenceService/ModelMetadata', 'read'],
  ['/inference.GRPCInferenceService/ModelReady', 'read'],
]);

/**
 * Finds the model and action of a request. gRPC bodies are not sent to ext_authz, so for the
 * Open Inference Protocol's gRPC methods the model comes from the `x-bulwark-model` header
 * (and `x-bulwark-model-version`); the inference service checks that it equals the body's
 * `model_name`. REST paths `/v2/models/<name>[/versions/<v>][/infer|/ready]` carry it in the
 * path. Model administration (`/bulwark.model.v1.*`) is the `admin` action.
 */
export function routeOf(path: string, headers: Record<string, string>): Route | string {
  const clean = path.split('?')[0]!;
  let route: Route | undefined;
  const grpcAction = GRPC_ROUTES.get(clean);
  if (grpcAction || clean.startsWith('/bulwark.model.v1.')) {
    const model = headers[MODEL_HEADER];
    if (!model) return `missing ${MODEL_HEADER} header`;
    route = { model, action: grpcAction ?? 'admin' };
    if (headers[MODEL_VERSION_HEADER]) route.version = headers[MODEL_VERSION_HEADER];
  } else {
    const m = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/infer|\/ready)?$/.exec(clean);
    if (!m) return 'route is not served through the gateway';
    route = { model: m[1]!, action: m[3] === '/infer' ? 'infer' : 'read' };
    if (m[2]) route.version = m[2];
  }
  if (!NAME.test(route.model)) return 'malformed model name';
  if (route.version !== undefined && !VERSION.test(route.version)) return 'malformed model version';
  return route;
}

function header(key: string, value: string): HeaderOption {
  return { header: { key, value }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' };
}

function deny(code: number, httpCode: string, error: string, message: string): CheckResponse {
  const headers = [header('content-type', 'application/json')];
  if (code === GRPC.UNAUTHENTICATED)
    headers.push(header('www-authenticate', `Bearer error="invalid_token"`));
  return {
    status: { code, message },
    deniedResponse: {
      status: { code: httpCode },
      headers,
      body: JSON.stringify({ error, message }),
    },
  };
}

const unauthenticated = (message: string) =>
  deny(GRPC.UNAUTHENTICATED, 'Unauthorized', 'unauthenticated', message);
const forbidden = (message: string) =>
  deny(GRPC.PERMISSION_DENIED, 'Forbidden', 'permission_denied', message);

/**
 * Envoy `envoy.service.auth.v3.Authorization/Check`: identifies the caller (jwt_authn metadata or
 * the bearer token itself), finds the model and action, decides and answers in Envoy's terms.
 * Refusals never reveal rule names or policy structure.
 */
export function createCheckHandler(
  options: CheckHandlerOptions,
): (req: CheckRequest) => Promise<CheckResponse> {
  const { store, auditor, verifier, logger, now } = options;
  const payloadKey = options.jwtPayloadKey ?? 'jwt_payload';

  async function identify(
    req: CheckRequest,
    headers: Record<string, string>,
  ): Promise<TokenIdentity> {
    const meta = req.attributes?.metadataContext?.filterMetadata?.[JWT_AUTHN];
    if (meta) {
      const payload = structToJson(meta)[payloadKey];
      if (payload && typeof payload === 'object' && !Array.isArray(payload)) {
        return verifier.fromVerifiedPayload(payload as Record<string, unknown>);
      }
    }
    const auth = headers['authorization'];
    const m = auth ? /^Bearer ([A-Za-z0-9._~+/=-]+)$/i.exec(auth.trim()) : null;
    if (!m) throw new PolicyError('ERR_POLICY_UNAUTHENTICATED', 'missing bearer token');
    return verifier.verify(m[1]!);
  }

  return async (req) => {
    try {
      return await checkOnce(req);
    } catch (err) {
      logger.error({ err }, 'check failed');
      return forbidden('request refused');
    }
  };

  async function checkOnce(req: CheckRequest): Promise<CheckResponse> {
    const http = req.attributes?.request?.http;
    const headers = http?.headers ?? {};
    const source = req.attributes?.source;
    let identity: TokenIdentity;
    try {
      identity = await identify(req, headers);
    } catch (err) {
      const message = err instanceof PolicyError ? err.message : 'invalid token';
      logger.info(
        { event: 'policy.check.unauthenticated', code: errorCode(err), reason: message },
        'check: no valid identity',
      );
      return unauthenticated(message);
    }
    let certificateBound = false;
    if (identity.certificateThumbprint !== undefined) {
      // RFC 8705: a bound token is only good together with the certificate it is bound to.
      const presented = source?.certificate
        ? certificateThumbprintFromEnvoy(source.certificate)
        : undefined;
      if (presented !== identity.certificateThumbprint) {
        return unauthenticated('token is bound to a different client certificate');
      }
      certificateBound = true;
    }
    const sourceAddress = source?.address?.socketAddress?.address;
    const context = {
      via: 'check' as const,
      ...(source?.principal ? { peerSpiffeId: source.principal } : {}),
      ...(sourceAddress ? { sourceAddress } : {}),
      ...(identity.clientId ? { clientId: identity.clientId } : {}),
    };
    // Refusals before the policy is consulted are decisions too: record them (never fail closed
    // on them, they are refusals already).
    const refuse = (object: string, action: string, reason: string, message: string) => {
      void auditor
        .record(
          {
            time: now(),
            subject: identity.subject,
            org: identity.org,
            object,
            action,
            allowed: false,
            matchedRule: '',
            revision: store.revision,
            reason,
            ...context,
          },
          false,
        )
        .catch(() => undefined);
      return forbidden(message);
    };
    const route = routeOf(http?.path ?? '', headers);
    if (typeof route === 'string') return refuse('route', 'unknown', route, route);
    const refusal = `not permitted to ${route.action} model "${route.model}" for organisation "${identity.org}"`;
    const object = `model:${route.model}${route.version ? `@${route.version}` : ''}`;
    // An unknown model gets the same answer as a forbidden one, so model names cannot be probed.
    if (!store.engine.knowsModel(route.model)) {
      logger.info(
        { event: 'policy.check.unknown_model', model: route.model, org: identity.org },
        'check: unknown model',
      );
      return refuse(object, route.action, 'unknown model', refusal);
    }
    const batch = headers[BATCH_SIZE_HEADER];
    try {
      const decision = await decideAndRecord(
        store,
        auditor,
        {
          subject: identity.subject,
          org: identity.org,
          object,
          action: route.action,
          roles: identity.roles,
          attributes: {
            certificate_bound: certificateBound,
            scopes: identity.scopes,
            ...(identity.acr !== undefined ? { acr: identity.acr } : {}),
            ...(identity.clientId !== undefined ? { client_id: identity.clientId } : {}),
            ...(sourceAddress ? { source_address: sourceAddress } : {}),
            ...(source?.principal ? { peer_spiffe_id: source.principal } : {}),
            ...(batch && /^\d{1,9}$/.test(batch) ? { batch_size: Number(batch) } : {}),
          },
        },
        context,
        now,
      );
      if (!decision.allowed) return forbidden(refusal);
      return {
        status: { code: GRPC.OK },
        okResponse: {
          headers: [
            header('x-bulwark-subject', identity.subject),
            header('x-bulwark-org', identity.org),
            header('x-bulwark-policy-revision', decision.revision),
          ],
        },
      };
    } catch (err) {
      if (errorCode(err) === 'ERR_POLICY_AUDIT_UNAVAILABLE') {
        return deny(
          GRPC.UNAVAILABLE,
          'ServiceUnavailable',
          'unavailable',
          'audit unavailable; try again later',
        );
      }
      if (errorCode(err) === 'ERR_POLICY_INVALID_REQUEST') return forbidden('malformed request');
      logger.error({ err }, 'check failed');
      return forbidden('request refused');
    }
  }
}
