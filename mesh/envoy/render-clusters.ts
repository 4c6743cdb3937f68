import type {
  GatewayUpstream,
  ResolvedEnvoyRenderOptions,
  UpstreamEndpoint,
} from './render-options.ts';

const HTTP_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const TLS_UPSTREAM =
  'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

/** The mesh's gRPC services behind the gateway, health-checked with `grpc.health.v1`. */
export const GRPC_UPSTREAMS = ['inference', 'policy', 'audit'] as const;

/**
 * One cluster per mesh service (mTLS with the gateway's SVID, the peer's SPIFFE ID pinned),
 * plus the OTLP collector. Each mesh cluster has active health checks, circuit breakers and
 * outlier detection, so a failing replica leaves the rotation.
 */
export function renderClusters(options: ResolvedEnvoyRenderOptions): object[] {
  return [
    ...GRPC_UPSTREAMS.map((name) => meshCluster(name, options)),
    identityCluster(options),
    collectorCluster(options.collector),
  ];
}

function meshCluster(name: GatewayUpstream, options: ResolvedEnvoyRenderOptions): object {
  return {
    ...baseCluster(name, options.upstreams[name]),
    typed_extension_protocol_options: http2Options(),
    transport_socket: meshTls(name, options, ['h2']),
    health_checks: [
      {
        timeout: '1s',
        interval: '5s',
        unhealthy_threshold: 2,
        healthy_threshold: 1,
        // The empty service name asks for the whole server's status.
        grpc_health_check: { service_name: '' },
      },
    ],
    circuit_breakers: circuitBreakers(options),
    outlier_detection: {
      consecutive_5xx: 5,
      consecutive_gateway_failure: 3,
      interval: '5s',
      base_ejection_time: '30s',
      max_ejection_percent: 50,
    },
  };
}

/** The broker: HTTPS (HTTP/1.1), used to fetch the JWKS that verifies mesh tokens. */
function identityCluster(options: ResolvedEnvoyRenderOptions): object {
  return {
    ...baseCluster('identity', options.upstreams.identity),
    transport_socket: meshTls('identity', options, ['http/1.1']),
    health_checks: [
      {
        timeout: '1s',
        interval: '10s',
        unhealthy_threshold: 3,
        healthy_threshold: 1,
        http_health_check: { path: '/.well-known/openid-configuration' },
      },
    ],
    circuit_breakers: circuitBreakers(options),
  };
}

/** OTLP over gRPC to the trace collector; plaintext inside the deployment's network. */
function collectorCluster(collector: UpstreamEndpoint): object {
  return {
    ...baseCluster('otel_collector', collector),
    typed_extension_protocol_options: http2Options(),
  };
}

function baseCluster(name: string, endpoint: UpstreamEndpoint): object {
  return {
    name,
    type: 'STRICT_DNS',
    // STRICT_DNS resolves every address behind a (headless) service name, so the gateway
    // balances across all replicas instead of pinning to one connection.
    dns_lookup_family: 'V4_PREFERRED',
    respect_dns_ttl: true,
    connect_timeout: '1s',
    lb_policy: 'LEAST_REQUEST',
    load_assignment: {
      cluster_name: name,
      endpoints: [
        {
          lb_endpoints: [
            {
              endpoint: {
                address: { socket_address: { address: endpoint.host, port_value: endpoint.port } },
              },
            },
          ],
        },
      ],
    },
  };
}

function http2Options(): object {
  return {
    [HTTP_OPTIONS]: {
      '@type': `type.googleapis.com/${HTTP_OPTIONS}`,
      explicit_http_config: { http2_protocol_options: { max_concurrent_streams: 1024 } },
    },
  };
}

/** mTLS to a mesh service: present the gateway's SVID, accept only the peer's SPIFFE ID. */
function meshTls(name: string, options: ResolvedEnvoyRenderOptions, alpn: string[]): object {
  const pki = options.pkiDir;
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': TLS_UPSTREAM,
      sni: name,
      common_tls_context: {
        alpn_protocols: alpn,
        tls_params: { tls_minimum_protocol_version: 'TLSv1_2' },
        tls_certificates: [
          {
            certificate_chain: { filename: `${pki}/gateway.crt` },
            private_key: { filename: `${pki}/gateway.key` },
          },
        ],
        validation_context: {
          trusted_ca: { filename: `${pki}/ca.crt` },
          match_typed_subject_alt_names: [
            {
              san_type: 'URI',
              matcher: { exact: `spiffe://${options.trustDomain}/svc/${name}` },
            },
          ],
        },
      },
    },
  };
}

function circuitBreakers(options: ResolvedEnvoyRenderOptions): object {
  const limits = options.circuitBreakers;
  return {
    thresholds: [
      {
        priority: 'DEFAULT',
        max_connections: limits.maxConnections,
        max_pending_requests: limits.maxPendingRequests,
        max_requests: limits.maxRequests,
        max_retries: limits.maxRetries,
      },
    ],
  };
}
