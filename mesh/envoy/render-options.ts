import { EnvoyError } from './envoy-error.ts';

/** A host and port Envoy connects to (a DNS name in compose and Kubernetes). */
export interface UpstreamEndpoint {
  host: string;
  port: number;
}

/** The mesh services the gateway talks to. */
export type GatewayUpstream = 'inference' | 'policy' | 'audit' | 'identity';

/** Options of {@link renderEnvoyConfig}; every default is in {@link ENVOY_RENDER_DEFAULTS}. */
export interface EnvoyRenderOptions {
  /** SPIFFE trust domain of the mesh. Default `bulwark.local`. */
  trustDomain?: string;
  /** Public TLS listener. Default `0.0.0.0:8443`. */
  listen?: UpstreamEndpoint;
  /** Admin interface, loopback only. Default `127.0.0.1:9901`. */
  admin?: UpstreamEndpoint;
  /** Plain-HTTP readiness listener (`GET /ready`) for probes. Default `0.0.0.0:9902`. */
  ready?: UpstreamEndpoint;
  /** Where each mesh service listens. */
  upstreams: Record<GatewayUpstream, UpstreamEndpoint>;
  /** OTLP/gRPC collector (Jaeger, OpenTelemetry Collector). Default `jaeger:4317`. */
  collector?: UpstreamEndpoint;
  /** The broker's issuer URL: the `iss` every accepted token must carry. */
  issuer: string;
  /** Path of the broker's JWKS on the identity upstream. Default `/jwks`. */
  jwksPath?: string;
  /** Audience of tokens for inference. Default `urn:bulwark:inference`. */
  audience?: string;
  /**
   * Folder holding `ca.crt` (mesh CA) and the gateway's SVID `gateway.crt`/`gateway.key`
   * inside the Envoy container: where docker compose mounts secrets (and the Kubernetes
   * manifests mount the gateway's Secret). Default `/run/secrets`.
   */
  pkiDir?: string;
  /** Gateway-wide token bucket. Default 200 tokens, refilled by 100 every second. */
  rateLimit?: { maxTokens: number; tokensPerFill: number; fillInterval: string };
  /** Per-upstream circuit breaker thresholds. */
  circuitBreakers?: {
    maxConnections: number;
    maxPendingRequests: number;
    maxRequests: number;
    maxRetries: number;
  };
  /** Deadline of a proxied inference call. Default `30s`. */
  routeTimeout?: string;
  /** Deadline of one ext_authz Check. Default `0.5s`. */
  authzTimeout?: string;
  /** Share of requests traced, in percent. Default 100. */
  samplingPercent?: number;
}

/** Every default of {@link EnvoyRenderOptions}, resolved in one place. */
export const ENVOY_RENDER_DEFAULTS = {
  trustDomain: 'bulwark.local',
  listen: { host: '0.0.0.0', port: 8443 },
  admin: { host: '127.0.0.1', port: 9901 },
  ready: { host: '0.0.0.0', port: 9902 },
  collector: { host: 'jaeger', port: 4317 },
  jwksPath: '/jwks',
  audience: 'urn:bulwark:inference',
  pkiDir: '/run/secrets',
  rateLimit: { maxTokens: 200, tokensPerFill: 100, fillInterval: '1s' },
  circuitBreakers: {
    maxConnections: 1024,
    maxPendingRequests: 256,
    maxRequests: 1024,
    maxRetries: 3,
  },
  routeTimeout: '30s',
  authzTimeout: '0.5s',
  samplingPercent: 100,
} as const;

export type ResolvedEnvoyRenderOptions = Required<EnvoyRenderOptions>;

/** Applies the defaults and rejects bad options with a message naming the option. */
export function resolveRenderOptions(options: EnvoyRenderOptions): ResolvedEnvoyRenderOptions {
  const resolved: ResolvedEnvoyRenderOptions = { ...ENVOY_RENDER_DEFAULTS, ...options };
  const fail = (option: string, why: string): never => {
    throw new EnvoyError('ERR_ENVOY_RENDER_OPTIONS', `envoy render option ${option} ${why}`);
  };
  if (!/^[a-z0-9.-]+$/.test(resolved.trustDomain))
    fail('trustDomain', 'is not a trust domain name');
  let issuer: URL | undefined;
  try {
    issuer = new URL(resolved.issuer);
  } catch {
    fail('issuer', `is not a URL: ${JSON.stringify(resolved.issuer)}`);
  }
  if (issuer?.protocol !== 'https:') fail('issuer', 'must be an https URL');
  if (!resolved.jwksPath.startsWith('/')) fail('jwksPath', 'must start with /');
  for (const name of ['inference', 'policy', 'audit', 'identity'] as const) {
    if (!resolved.upstreams?.[name]) fail(`upstreams.${name}`, 'is required');
  }
  const endpoints: [string, UpstreamEndpoint][] = [
    ['listen', resolved.listen],
    ['admin', resolved.admin],
    ['ready', resolved.ready],
    ['collector', resolved.collector],
    ...Object.entries(resolved.upstreams).map(([name, endpoint]): [string, UpstreamEndpoint] => [
      `upstreams.${name}`,
      endpoint,
    ]),
  ];
  for (const [name, endpoint] of endpoints) {
    if (!endpoint || typeof endpoint.host !== 'string' || endpoint.host === '') {
      fail(name, 'needs a host');
    }
    if (!Number.isInteger(endpoint.port) || endpoint.port < 1 || endpoint.port > 65535) {
      fail(`${name}.port`, `must be a port number from 1 to 65535, got ${String(endpoint.port)}`);
    }
  }
  if (!(resolved.samplingPercent >= 0 && resolved.samplingPercent <= 100)) {
    fail('samplingPercent', 'must be between 0 and 100');
  }
  return resolved;
}
