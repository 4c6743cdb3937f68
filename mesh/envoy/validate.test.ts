import { validateEnvoyConfig } from './validate.ts';
import type { ConfigIssue } from './walk-message.ts';

/** A small but complete bootstrap: one route to one HTTP/2 cluster. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed YAML, walked freely
type Obj = Record<string, any>;

function minimal(): Obj {
  return {
    static_resources: {
      listeners: [
        {
          name: 'main',
          address: { socket_address: { address: '0.0.0.0', port_value: 8080 } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type':
                      'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: 'main',
                    http_filters: [
                      {
                        name: 'envoy.filters.http.router',
                        typed_config: {
                          '@type':
                            'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
                        },
                      },
                    ],
                    route_config: {
                      virtual_hosts: [
                        {
                          name: 'all',
                          domains: ['*'],
                          routes: [{ match: { prefix: '/' }, route: { cluster: 'backend' } }],
                        },
                      ],
                    },
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [
        {
          name: 'backend',
          connect_timeout: '0.25s',
          type: 'STATIC',
          load_assignment: {
            cluster_name: 'backend',
            endpoints: [
              {
                lb_endpoints: [
                  {
                    endpoint: {
                      address: { socket_address: { address: '127.0.0.1', port_value: 9000 } },
                    },
                  },
                ],
              },
            ],
          },
        },
      ],
    },
  };
}

const HCM = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config';
const errors = (issues: ConfigIssue[]) => issues.filter((issue) => issue.severity === 'error');

describe('validateEnvoyConfig: proto3 JSON mapping', () => {
  it('accepts a minimal valid bootstrap', () => {
    const result = validateEnvoyConfig(minimal());
    expect(result.issues).toEqual([]);
    expect(result.ok).toBe(true);
  });

  it('accepts lowerCamelCase keys as well as snake_case ones', () => {
    const config = minimal();
    const cluster = config.static_resources.clusters[0];
    cluster.connectTimeout = cluster.connect_timeout;
    delete cluster.connect_timeout;
    config.staticResources = config.static_resources;
    delete config.static_resources;
    expect(validateEnvoyConfig(config).issues).toEqual([]);
  });

  it('refuses the same field given in both spellings', () => {
    const config = minimal();
    config.static_resources.clusters[0].connectTimeout = '1s';
    const [issue] = errors(validateEnvoyConfig(config).issues);
    expect(issue?.path).toBe('static_resources.clusters[0].connectTimeout');
    expect(issue?.message).toMatch(/given twice/);
  });

  it.each([
    ['0.25s', true],
    ['1s', true],
    ['-3.000000001s', true],
    ['1.5', false],
    ['10ms', false],
    [5, false],
  ])('Duration %p is accepted: %p', (value, accepted) => {
    const config = minimal();
    config.static_resources.clusters[0].connect_timeout = value;
    const result = validateEnvoyConfig(config);
    expect(result.ok).toBe(accepted);
    if (!accepted)
      expect(result.issues[0]?.path).toBe('static_resources.clusters[0].connect_timeout');
  });

  it('never repeats a misplaced string value (it may be a secret) in a message', () => {
    const config = minimal();
    config.static_resources.clusters[0].connect_timeout = 'hunter2-password';
    config.static_resources.clusters[0].per_connection_buffer_limit_bytes = 'hunter2-password';
    const messages = validateEnvoyConfig(config).issues.map((issue) => issue.message);
    expect(messages).toHaveLength(2);
    expect(messages.join('\n')).not.toContain('hunter2');
  });

  it('reads wrapper types as their bare scalar and checks its type and range', () => {
    const config = minimal();
    const cluster = config.static_resources.clusters[0];
    cluster.per_connection_buffer_limit_bytes = 32768;
    expect(validateEnvoyConfig(config).ok).toBe(true);
    cluster.per_connection_buffer_limit_bytes = { value: 32768 };
    expect(errors(validateEnvoyConfig(config).issues)[0]?.message).toMatch(/expected an integer/);
    cluster.per_connection_buffer_limit_bytes = -1;
    expect(errors(validateEnvoyConfig(config).issues)[0]?.message).toMatch(
      /out of range for uint32/,
    );
  });

  it('accepts 64-bit integers as strings and refuses fractions', () => {
    const config = minimal();
    const buckets = { max_tokens: 10, fill_interval: '1s', tokens_per_fill: 1 };
    config.static_resources.clusters[0].lb_policy = 'ROUND_ROBIN';
    config.stats_flush_interval = '5s';
    config.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters.unshift(
      {
        name: 'envoy.filters.http.local_ratelimit',
        typed_config: {
          '@type':
            'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
          stat_prefix: 'rl',
          token_bucket: buckets,
        },
      },
    );
    expect(validateEnvoyConfig(config).ok).toBe(true);
    config.stats_server_version_override = '18446744073709551615';
    expect(validateEnvoyConfig(config).ok).toBe(true);
    config.stats_server_version_override = 1.5;
    expect(errors(validateEnvoyConfig(config).issues)[0]?.path).toBe(
      'stats_server_version_override',
    );
  });

  it('accepts enum values by name or number and refuses unknown names', () => {
    const config = minimal();
    config.static_resources.clusters[0].lb_policy = 1;
    expect(validateEnvoyConfig(config).ok).toBe(true);
    config.static_resources.clusters[0].lb_policy = 'FASTEST';
    const [issue] = errors(validateEnvoyConfig(config).issues);
    expect(issue?.path).toBe('static_resources.clusters[0].lb_policy');
    expect(issue?.message).toMatch(/not a value of enum envoy.config.cluster.v3.Cluster.LbPolicy/);
  });

  it('accepts any mapping in a Struct field', () => {
    const config = minimal();
    config.node = { id: 'n', metadata: { any: { nested: [1, 'two', null, true] } } };
    expect(validateEnvoyConfig(config).ok).toBe(true);
    config.node.metadata = ['not', 'a', 'mapping'];
    expect(errors(validateEnvoyConfig(config).issues)[0]?.path).toBe('node.metadata');
  });

  it('resolves an Any by its @type and checks the fields it holds', () => {
    const config = minimal();
    const router =
      config.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0]
        .typed_config;
    router.suppress_envoy_headers = 'yes';
    const [issue] = errors(validateEnvoyConfig(config).issues);
    expect(issue?.path).toBe(`${HCM}.http_filters[0].typed_config.suppress_envoy_headers`);
    expect(issue?.message).toMatch(/expected true or false/);
  });

  it('refuses an Any without @type, and warns on an empty one', () => {
    const config = minimal();
    const router =
      config.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0];
    router.typed_config = { dynamic_stats: true };
    const [issue] = errors(validateEnvoyConfig(config).issues);
    expect(issue?.path).toBe(`${HCM}.http_filters[0].typed_config`);
    expect(issue?.message).toMatch(/missing "@type"/);
    // Envoy then falls back to the filter's name: accepted, with a warning.
    router.typed_config = {};
    const result = validateEnvoyConfig(config);
    expect(result.ok).toBe(true);
    expect(result.issues[0]).toMatchObject({ severity: 'warning', message: /empty typed_config/ });
  });

  it('accepts enum names in any case, as Envoy does, with a warning', () => {
    const config = minimal();
    config.static_resources.clusters[0].lb_policy = 'round_robin';
    const result = validateEnvoyConfig(config);
    expect(result.ok).toBe(true);
    expect(result.issues[0]).toMatchObject({
      severity: 'warning',
      path: 'static_resources.clusters[0].lb_policy',
      message: 'write "ROUND_ROBIN": enum names are upper case',
    });
  });

  it('refuses two members of one oneof', () => {
    const config = minimal();
    const hcm = config.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    hcm.rds = { route_config_name: 'x', config_source: { ads: {} } };
    const messages = errors(validateEnvoyConfig(config).issues).map((issue) => issue.message);
    expect(messages.join('\n')).toMatch(/only one of route_specifier/);
  });

  it('enforces the required fields of Envoy protos (protoc-gen-validate)', () => {
    const config = minimal();
    delete config.static_resources.clusters[0].name;
    const [issue] = errors(validateEnvoyConfig(config).issues);
    expect(issue?.path).toBe('static_resources.clusters[0]');
    expect(issue?.message).toMatch(/missing required field "name"/);
  });

  it('enforces the bounds Envoy puts on present values (protoc-gen-validate)', () => {
    const config = minimal();
    const cluster = config.static_resources.clusters[0];
    cluster.outlier_detection = { max_ejection_percent: 101 };
    cluster.name = '';
    const issues = errors(validateEnvoyConfig(config).issues);
    expect(issues.map((issue) => [issue.path, issue.message])).toEqual(
      expect.arrayContaining([
        [
          'static_resources.clusters[0].outlier_detection.max_ejection_percent',
          '101 is not allowed: "max_ejection_percent" must be at most 100',
        ],
        ['static_resources.clusters[0].name', '"name" must not be empty'],
      ]),
    );
  });

  it('suggests the closest field for a misspelt key', () => {
    const config = minimal();
    config.static_resources.clusters[0].conect_timeout = '1s';
    const [issue] = errors(validateEnvoyConfig(config).issues);
    expect(issue?.message).toMatch(/did you mean "connect_timeout"/);
  });

  it('warns, without failing, on deprecated fields', () => {
    const config = minimal();
    config.static_resources.clusters[0].max_requests_per_connection = 10;
    const result = validateEnvoyConfig(config);
    expect(result.ok).toBe(true);
    expect(result.issues[0]).toMatchObject({
      severity: 'warning',
      path: 'static_resources.clusters[0].max_requests_per_connection',
    });
  });

  it('reports YAML syntax errors with their line', () => {
    const result = validateEnvoyConfig('static_resources:\n  clusters: [\n');
    expect(result.ok).toBe(false);
    expect(result.issues[0]?.message).toMatch(/not valid YAML/);
    expect(result.issues[0]?.line).toBeGreaterThan(0);
  });

  it('reports the line of an issue in YAML text', () => {
    const text = [
      'static_resources:',
      '  clusters:',
      '  - name: backend',
      '    connect_timeout: soon',
      '',
    ].join('\n');
    const [issue] = validateEnvoyConfig(text).issues;
    expect(issue).toMatchObject({ path: 'static_resources.clusters[0].connect_timeout', line: 4 });
  });
});

describe('validateEnvoyConfig: references', () => {
  it('refuses a route to an undefined cluster', () => {
    const config = minimal();
    config.static_resources.clusters[0].name = 'other';
    const paths = errors(validateEnvoyConfig(config).issues).map((issue) => issue.path);
    expect(paths).toContain(`${HCM}.route_config.virtual_hosts[0].routes[0].route.cluster`);
  });

  it('refuses a gRPC service on a cluster without HTTP/2', () => {
    const config = minimal();
    const hcm = config.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    hcm.http_filters.unshift({
      name: 'envoy.filters.http.ext_authz',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
        grpc_service: { envoy_grpc: { cluster_name: 'backend' } },
      },
    });
    const [issue] = errors(validateEnvoyConfig(config).issues);
    expect(issue?.path).toBe(
      `${HCM}.http_filters[0].typed_config.grpc_service.envoy_grpc.cluster_name`,
    );
    expect(issue?.message).toMatch(/not configured for HTTP\/2/);
  });

  it('refuses a router that is not the last HTTP filter', () => {
    const config = minimal();
    const hcm = config.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    hcm.http_filters.push({
      name: 'envoy.filters.http.health_check',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck',
        pass_through_mode: false,
      },
    });
    const messages = errors(validateEnvoyConfig(config).issues).map((issue) => issue.message);
    expect(messages).toContain('the router filter must be the last HTTP filter');
  });

  it('refuses two clusters with one name', () => {
    const config = minimal();
    config.static_resources.clusters.push({ ...config.static_resources.clusters[0] });
    const [issue] = errors(validateEnvoyConfig(config).issues);
    expect(issue?.path).toBe('static_resources.clusters[1].name');
  });
});
