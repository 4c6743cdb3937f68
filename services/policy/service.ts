import type { ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { instrumentPolicy } from './policy-metrics.ts';
import {
  PolicyServiceService,
  type PolicyServiceServer,
} from '../../gen/bulwark/policy/v1/policy.ts';
import { noAudit, type DecisionAuditor } from './decision-record.ts';
import { loadEnvoyAuthorization } from './envoy-protos.ts';
import { createCheckHandler, type CheckRequest, type CheckResponse } from './ext-authz.ts';
import { createPolicyServiceImplementation } from './policy-grpc.ts';
import type { PolicySource } from './policy-source.ts';
import { createPolicyStore, type PolicyStore, type ReloadEvent } from './policy-store.ts';
import {
  createTokenVerifier,
  type TokenVerifier,
  type TokenVerifierOptions,
} from './token-verifier.ts';

/** Options of {@link createPolicyService}; every default is listed here. */
export interface PolicyServiceOptions {
  /** Where policy comes from: `createFileSource(...)` or `createPostgresSource(...)`. */
  source: PolicySource;
  logger: Logger;
  /** Where decisions are recorded. Default: nowhere (logged as a warning at start). */
  auditor?: DecisionAuditor;
  /**
   * Access-token checks for ext_authz: broker issuer, audience and JWKS key source. Used to
   * verify bearer tokens the gateway did not verify, and to re-check iss/aud/exp of jwt_authn
   * payloads.
   */
  tokens: TokenVerifierOptions | TokenVerifier;
  /** Key of jwt_authn's `payload_in_metadata`. Default `jwt_payload`. */
  jwtPayloadKey?: string;
  /** Clock. Default real time. */
  now?: () => Date;
  /** Decision cache entries. Default 100,000. */
  cacheSize?: number;
  /** Hot reload on source change. Default true. */
  watch?: boolean;
  /** Registry for the service's metrics (decisions, cache, rules). Default: none. */
  registry?: Registry;
}

/** Something services can be added to: a `MeshServer` or a grpc-js `Server`. */
export interface ServiceHost {
  addService(definition: ServiceDefinition, implementation: UntypedServiceImplementation): void;
}

/** The policy service, ready to attach to a server. */
export interface PolicyService {
  readonly store: PolicyStore;
  /** `bulwark.policy.v1.PolicyService` handlers. */
  readonly implementation: PolicyServiceServer;
  /** Envoy `envoy.service.auth.v3.Authorization` definition and handlers. */
  readonly authorization: {
    definition: ServiceDefinition;
    implementation: UntypedServiceImplementation;
  };
  /** The ext_authz decision without gRPC around it. */
  check(request: CheckRequest): Promise<CheckResponse>;
  /** Adds both services to a server the caller made. */
  addTo(server: ServiceHost): void;
  /** Stops watching the source and flushes the auditor. */
  close(): Promise<void>;
}

/**
 * Creates the policy service: loads the policy (refusing to start on a broken one), then serves
 * `bulwark.policy.v1.PolicyService` and Envoy's ext_authz `Check` from the same store.
 *
 * @example
 * ```ts
 * const policy = await createPolicyService({
 *   source: createFileSource({ modelPath: 'policy/model.conf', policyPath: 'policy/policy.yaml' }),
 *   logger,
 *   auditor: createAuditAuditor({ client: auditClient, queueDir, logger }),
 *   tokens: { issuer, audience: 'urn:bulwark:inference', keys: createRemoteJWKSet(jwksUrl) },
 * });
 * const server = createMeshServer({ tls, allowedPeers: [gateway, inference], logger });
 * policy.addTo(server);
 * await server.listen();
 * ```
 */
export async function createPolicyService(options: PolicyServiceOptions): Promise<PolicyService> {
  const now = options.now ?? (() => new Date());
  const { logger } = options;
  if (!options.auditor)
    logger.warn('policy service started without an auditor: decisions are not audited');
  // Filled once the auditor exists; reloads only happen after start.
  let recordReload: (event: ReloadEvent) => void = () => undefined;
  const store = await createPolicyStore({
    source: options.source,
    logger,
    now,
    onReload: (event) => recordReload(event),
    ...(options.cacheSize !== undefined ? { cacheSize: options.cacheSize } : {}),
    ...(options.watch !== undefined ? { watch: options.watch } : {}),
  });
  const auditor = options.registry
    ? instrumentPolicy(options.registry, store, options.auditor ?? noAudit)
    : (options.auditor ?? noAudit);
  recordReload = (event) => {
    // Policy administration trail: every applied or refused reload (file watch, NOTIFY, RPC).
    void auditor
      .record(
        {
          time: now(),
          via: 'decide',
          subject: 'bulwark-policy-service',
          org: '',
          object: 'policy:revision',
          action: 'reload',
          allowed: event.changed,
          matchedRule: '',
          revision: event.revision,
          reason: event.changed
            ? `loaded from ${event.source}, replacing ${event.previous}`
            : `refused: ${event.error ?? 'invalid policy'}`.slice(0, 1000),
        },
        false,
      )
      .catch(() => undefined);
  };
  const tokens = options.tokens;
  const verifier: TokenVerifier =
    'verify' in tokens ? tokens : createTokenVerifier({ now, ...tokens });
  const check = createCheckHandler({
    store,
    auditor,
    verifier,
    logger,
    now,
    ...(options.jwtPayloadKey ? { jwtPayloadKey: options.jwtPayloadKey } : {}),
  });
  const implementation = createPolicyServiceImplementation({ store, auditor, logger, now });
  const authorization = {
    definition: loadEnvoyAuthorization().service,
    implementation: {
      Check: (
        call: { request: CheckRequest },
        callback: (err: null, res: CheckResponse) => void,
      ) => {
        // The handler never throws: every failure is already an Envoy denial.
        void check(call.request).then((res) => callback(null, res));
      },
    } as UntypedServiceImplementation,
  };
  return {
    store,
    implementation,
    authorization,
    check,
    addTo(server) {
      server.addService(PolicyServiceService, implementation);
      server.addService(authorization.definition, authorization.implementation);
    },
    async close() {
      store.close();
      await auditor.close();
      await options.source.close?.();
    },
  };
}
