import type { ResolvedEnvoyRenderOptions } from './render-options.ts';

const T = 'type.googleapis.com/';
const HCM = `${T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`;
const JWT_NAMESPACE = 'envoy.filters.http.jwt_authn';

/** Read-only audit RPCs partners may call; `Append*` is for mesh services and never routed. */
export const AUDIT_READ_METHODS = [
  'Query',
  'GetCheckpoint',
  'GetInclusionProof',
  'GetConsistencyProof',
  'Verify',
] as const;

/**
 * The public listener: TLS with HTTP/2 only (gRPC), optional partner client certificates
 * (validated against the mesh CA and forwarded as `x-forwarded-client-cert`), then
 * local rate limit → jwt_authn → ext_authz → router, with gRPC access logs to audit and
 * OpenTelemetry tracing.
 */
export function renderGatewayListener(options: ResolvedEnvoyRenderOptions): object {
  const pki = options.pkiDir;
  return {
    name: 'gateway',
    address: {
      socket_address: { address: options.listen.host, port_value: options.listen.port },
    },
    per_connection_buffer_limit_bytes: 1_048_576,
    filter_chains: [
      {
        transport_socket: {
          name: 'envoy.transport_sockets.tls',
          typed_config: {
            '@type': `${T}envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext`,
            // Partners may present a client certificate (certificate-bound tokens); the
            // token check still applies to every call.
            require_client_certificate: false,
            common_tls_context: {
              alpn_protocols: ['h2'],
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
                    matcher: { prefix: `spiffe://${options.trustDomain}/partner/` },
                  },
                ],
              },
            },
          },
        },
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: connectionManager(options),
          },
        ],
      },
    ],
  };
}

function connectionManager(options: ResolvedEnvoyRenderOptions): object {
  return {
    '@type': HCM,
    stat_prefix: 'gateway',
    codec_type: 'HTTP2',
    use_remote_address: true,
    normalize_path: true,
    merge_slashes: true,
    path_with_escaped_slashes_action: 'REJECT_REQUEST',
    // Replace whatever a client sent with what Envoy itself verified.
    forward_client_cert_details: 'SANITIZE_SET',
    set_current_client_cert_details: { uri: true, cert: true },
    generate_request_id: true,
    stream_idle_timeout: '300s',
    common_http_protocol_options: {
      idle_timeout: '3600s',
      headers_with_underscores_action: 'REJECT_REQUEST',
    },
    http2_protocol_options: {
      max_concurrent_streams: 100,
      initial_stream_window_size: 65_536,
      initial_connection_window_size: 1_048_576,
    },
    tracing: {
      random_sampling: { value: options.samplingPercent },
      provider: {
        name: 'envoy.tracers.opentelemetry',
        typed_config: {
          '@type': `${T}envoy.config.trace.v3.OpenTelemetryConfig`,
          grpc_service: { envoy_grpc: { cluster_name: 'otel_collector' }, timeout: '0.25s' },
          service_name: 'bulwark-gateway',
        },
      },
    },
    access_log: [
      {
        name: 'envoy.access_loggers.http_grpc',
        typed_config: {
          '@type': `${T}envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig`,
          common_config: {
            log_name: 'bulwark-gateway',
            transport_api_version: 'V3',
            grpc_service: { envoy_grpc: { cluster_name: 'audit' }, timeout: '1s' },
            buffer_flush_interval: '1s',
            buffer_size_bytes: 16_384,
          },
          // Never `authorization`: tokens stay out of the audit log.
          additional_request_headers_to_log: ['x-request-id', 'traceparent', 'grpc-timeout'],
          additional_response_trailers_to_log: ['grpc-status', 'grpc-message'],
        },
      },
    ],
    http_filters: [localRateLimit(options), jwtAuthn(options), extAuthz(options), router()],
    route_config: routes(options),
  };
}

function localRateLimit(options: ResolvedEnvoyRenderOptions): object {
  const fullyOn = { default_value: { numerator: 100, denominator: 'HUNDRED' } };
  return {
    name: 'envoy.filters.http.local_ratelimit',
    typed_config: {
      '@type': `${T}envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit`,
      stat_prefix: 'gateway_rate_limit',
      token_bucket: {
        max_tokens: options.rateLimit.maxTokens,
        tokens_per_fill: options.rateLimit.tokensPerFill,
        fill_interval: options.rateLimit.fillInterval,
      },
      filter_enabled: { runtime_key: 'gateway_rate_limit_enabled', ...fullyOn },
      filter_enforced: { runtime_key: 'gateway_rate_limit_enforced', ...fullyOn },
      // gRPC clients then see RESOURCE_EXHAUSTED instead of UNAVAILABLE.
      rate_limited_as_resource_exhausted: true,
    },
  };
}

function jwtAuthn(options: ResolvedEnvoyRenderOptions): object {
  const identity = options.upstreams.identity;
  const provider = (audience: string): object => ({
    issuer: options.issuer,
    audiences: [audience],
    require_expiration: true,
    clock_skew_seconds: 30,
    remote_jwks: {
      http_uri: {
        uri: `https://${identity.host}:${identity.port}${options.jwksPath}`,
        cluster: 'identity',
        timeout: '2s',
      },
      // Short cache: keys the broker rotates in are picked up within a minute.
      cache_duration: '60s',
      async_fetch: { fast_listener: false },
      retry_policy: {
        num_retries: 3,
        retry_back_off: { base_interval: '0.5s', max_interval: '5s' },
      },
    },
    // Services check the token again themselves: the gateway is defence in depth.
    forward: true,
    payload_in_metadata: 'jwt_payload',
  });
  return {
    name: JWT_NAMESPACE,
    typed_config: {
      '@type': `${T}envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication`,
      providers: {
        broker_inference: provider(options.audience),
        broker_audit: provider('urn:bulwark:audit'),
      },
      rules: [
        {
          match: { prefix: '/bulwark.audit.v1.AuditService/' },
          requires: { provider_name: 'broker_audit' },
        },
        { match: { prefix: '/' }, requires: { provider_name: 'broker_inference' } },
      ],
    },
  };
}

function extAuthz(options: ResolvedEnvoyRenderOptions): object {
  return {
    name: 'envoy.filters.http.ext_authz',
    typed_config: {
      '@type': `${T}envoy.extensions.filters.http.ext_authz.v3.ExtAuthz`,
      transport_api_version: 'V3',
      grpc_service: { envoy_grpc: { cluster_name: 'policy' }, timeout: options.authzTimeout },
      // Fail closed: no decision, no call.
      failure_mode_allow: false,
      status_on_error: { code: 'ServiceUnavailable' },
      metadata_context_namespaces: [JWT_NAMESPACE],
      include_peer_certificate: true,
    },
  };
}

function router(): object {
  return {
    name: 'envoy.filters.http.router',
    typed_config: { '@type': `${T}envoy.extensions.filters.http.router.v3.Router` },
  };
}

function routes(options: ResolvedEnvoyRenderOptions): object {
  const grpcRoute = (match: object, cluster: string): object => ({
    match: { ...match, grpc: {} },
    route: {
      cluster,
      timeout: options.routeTimeout,
      // Honour the caller's grpc-timeout up to the route's deadline.
      max_stream_duration: { grpc_timeout_header_max: options.routeTimeout },
    },
  });
  return {
    name: 'gateway',
    virtual_hosts: [
      {
        name: 'bulwark',
        domains: ['*'],
        routes: [
          grpcRoute({ prefix: '/inference.GRPCInferenceService/' }, 'inference'),
          grpcRoute({ prefix: '/bulwark.model.v1.ModelService/' }, 'inference'),
          ...AUDIT_READ_METHODS.map((method) =>
            grpcRoute({ path: `/bulwark.audit.v1.AuditService/${method}` }, 'audit'),
          ),
        ],
      },
    ],
  };
}

/** Plain-HTTP `GET /ready` for container and Kubernetes probes; 503 while draining. */
export function renderReadyListener(options: ResolvedEnvoyRenderOptions): object {
  return {
    name: 'ready',
    address: { socket_address: { address: options.ready.host, port_value: options.ready.port } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HCM,
              stat_prefix: 'ready',
              http_filters: [
                {
                  name: 'envoy.filters.http.health_check',
                  typed_config: {
                    '@type': `${T}envoy.extensions.filters.http.health_check.v3.HealthCheck`,
                    pass_through_mode: false,
                    headers: [{ name: ':path', string_match: { exact: '/ready' } }],
                  },
                },
                router(),
              ],
              route_config: {
                name: 'ready',
                virtual_hosts: [
                  {
                    name: 'ready',
                    domains: ['*'],
                    routes: [{ match: { prefix: '/' }, direct_response: { status: 404 } }],
                  },
                ],
              },
            },
          },
        ],
      },
    ],
  };
}
