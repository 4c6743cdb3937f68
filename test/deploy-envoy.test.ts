import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse, parseDocument } from 'yaml';
import { main, type CliIo } from '../cli/main.ts';
import { EMBEDDED_CONFIG_PATH, loadConfig } from '../mesh/config/index.ts';
import {
  AUDIT_READ_METHODS,
  renderEnvoyConfig,
  renderEnvoyYaml,
  renderOptionsFromConfig,
  validateEnvoyConfig,
  type ConfigIssue,
} from '../mesh/envoy/index.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const SHIPPED = path.join(ROOT, 'deploy/envoy/envoy.yaml');
const shippedText = readFileSync(SHIPPED, 'utf8');
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed YAML, walked freely
type Obj = Record<string, any>;
const shipped = parse(shippedText) as Obj;

const LISTENER = 'static_resources.listeners[0]';
const HCM = `${LISTENER}.filter_chains[0].filters[0].typed_config`;
const hcm = shipped.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
const filterIndex = (name: string) =>
  hcm.http_filters.findIndex((filter: { name: string }) => filter.name === name);

function defaultOptions() {
  return renderOptionsFromConfig(loadConfig({ file: EMBEDDED_CONFIG_PATH, env: {} }));
}

/** The shipped file with one change made at `at` (a YAML path), as text. */
function mutate(at: (string | number)[], value: unknown): string {
  const doc = parseDocument(shippedText);
  doc.setIn(at, value);
  return doc.toString();
}

const errorsOf = (text: string): ConfigIssue[] =>
  validateEnvoyConfig(text).issues.filter((issue) => issue.severity === 'error');

function capture(): { io: CliIo; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    io: { out: (text) => void (out += text), err: (text) => void (err += text) },
    out: () => out,
    err: () => err,
  };
}

describe('the shipped gateway config (deploy/envoy/envoy.yaml)', () => {
  it("validates against Envoy's protos with no error and no warning", () => {
    const result = validateEnvoyConfig(shippedText);
    expect(result.issues).toEqual([]);
    expect(result.ok).toBe(true);
  });

  it('is exactly what `bulwark envoy render` makes from the default bulwark.yaml', () => {
    const fresh = shippedText === renderEnvoyYaml(defaultOptions());
    expect(fresh ? 'up to date' : 'stale: run `bulwark envoy render`').toBe('up to date');
  });

  it('terminates TLS with HTTP/2 only and forwards verified partner certificates', () => {
    const listener = shipped.static_resources.listeners[0];
    const tls = listener.filter_chains[0].transport_socket.typed_config;
    expect(tls.common_tls_context.alpn_protocols).toEqual(['h2']);
    expect(tls.require_client_certificate).toBe(false);
    expect(tls.common_tls_context.validation_context.match_typed_subject_alt_names).toEqual([
      { san_type: 'URI', matcher: { prefix: 'spiffe://bulwark.local/partner/' } },
    ]);
    // SANITIZE_SET: a client-sent x-forwarded-client-cert is replaced, never passed on.
    expect(hcm.forward_client_cert_details).toBe('SANITIZE_SET');
    expect(hcm.set_current_client_cert_details).toMatchObject({ uri: true, cert: true });
  });

  it('runs rate limit, jwt_authn, ext_authz and the router in that order', () => {
    expect(hcm.http_filters.map((filter: { name: string }) => filter.name)).toEqual([
      'envoy.filters.http.local_ratelimit',
      'envoy.filters.http.jwt_authn',
      'envoy.filters.http.ext_authz',
      'envoy.filters.http.router',
    ]);
  });

  it("verifies tokens with the broker's JWKS and puts the payload into metadata", () => {
    const jwt = hcm.http_filters[filterIndex('envoy.filters.http.jwt_authn')].typed_config;
    const options = defaultOptions();
    const provider = jwt.providers.broker_inference;
    expect(provider.issuer).toBe(options.issuer);
    expect(provider.audiences).toEqual(['urn:bulwark:inference']);
    expect(provider.payload_in_metadata).toBe('jwt_payload');
    expect(provider.remote_jwks.http_uri).toMatchObject({
      uri: `https://identity:${options.upstreams.identity.port}/jwks`,
      cluster: 'identity',
    });
    expect(jwt.providers.broker_audit.audiences).toEqual(['urn:bulwark:audit']);
    // Every path needs a token: the catch-all rule is last and requires a provider.
    expect(jwt.rules.at(-1)).toEqual({
      match: { prefix: '/' },
      requires: { provider_name: 'broker_inference' },
    });
  });

  it('asks the policy service over gRPC and fails closed', () => {
    const authz = hcm.http_filters[filterIndex('envoy.filters.http.ext_authz')].typed_config;
    expect(authz.failure_mode_allow).toBe(false);
    expect(authz.grpc_service.envoy_grpc.cluster_name).toBe('policy');
    expect(authz.metadata_context_namespaces).toContain('envoy.filters.http.jwt_authn');
    expect(authz.transport_api_version).toBe('V3');
  });

  it('streams access logs to audit without ever logging the Authorization header', () => {
    const [log] = hcm.access_log;
    expect(log.typed_config['@type']).toMatch(/HttpGrpcAccessLogConfig$/);
    expect(log.typed_config.common_config.grpc_service.envoy_grpc.cluster_name).toBe('audit');
    expect(JSON.stringify(hcm.access_log).toLowerCase()).not.toContain('authorization');
  });

  it('routes only the read RPCs of the audit service, never Append', () => {
    const routes = hcm.route_config.virtual_hosts[0].routes as {
      match: { path?: string; prefix?: string };
      route: { cluster: string };
    }[];
    const auditPaths = routes.filter((r) => r.route.cluster === 'audit').map((r) => r.match.path);
    expect(auditPaths).toEqual(
      AUDIT_READ_METHODS.map((method) => `/bulwark.audit.v1.AuditService/${method}`),
    );
    expect(JSON.stringify(routes)).not.toMatch(/Append/);
    expect(routes.some((r) => r.match.prefix === '/')).toBe(false);
  });

  it.each(['inference', 'policy', 'audit'])(
    'reaches %s over mTLS pinned to its SPIFFE ID, with health checks and circuit breakers',
    (name) => {
      const cluster = shipped.static_resources.clusters.find(
        (c: { name: string }) => c.name === name,
      );
      const tls = cluster.transport_socket.typed_config.common_tls_context;
      expect(tls.tls_certificates[0].certificate_chain.filename).toBe('/run/secrets/gateway.crt');
      expect(tls.validation_context.match_typed_subject_alt_names).toEqual([
        { san_type: 'URI', matcher: { exact: `spiffe://bulwark.local/svc/${name}` } },
      ]);
      expect(cluster.health_checks[0].grpc_health_check).toBeDefined();
      expect(cluster.circuit_breakers.thresholds[0].max_requests).toBeGreaterThan(0);
    },
  );

  it('traces to the OTLP collector', () => {
    expect(hcm.tracing.provider.typed_config.grpc_service.envoy_grpc.cluster_name).toBe(
      'otel_collector',
    );
  });
});

describe('the validator rejects broken variants of the shipped config', () => {
  const ROUTE = [
    'static_resources',
    'listeners',
    0,
    'filter_chains',
    0,
    'filters',
    0,
    'typed_config',
    'route_config',
    'virtual_hosts',
    0,
    'routes',
    0,
    'route',
  ];

  it('an unknown field', () => {
    const [issue] = errorsOf(mutate([...ROUTE, 'clutser'], 'inference'));
    expect(issue?.path).toBe(`${HCM}.route_config.virtual_hosts[0].routes[0].route.clutser`);
    expect(issue?.message).toMatch(/unknown field "clutser" in envoy.config.route.v3.RouteAction/);
    expect(issue?.line).toBeGreaterThan(1);
  });

  it('a wrong type', () => {
    const at = ['static_resources', 'clusters', 0, 'connect_timeout'];
    const [issue] = errorsOf(mutate(at, 5));
    expect(issue?.path).toBe('static_resources.clusters[0].connect_timeout');
    expect(issue?.message).toMatch(/duration/);
  });

  it('a string where a number belongs', () => {
    const at = ['static_resources', 'listeners', 0, 'address', 'socket_address', 'port_value'];
    const [issue] = errorsOf(mutate(at, 'https'));
    expect(issue?.path).toBe(`${LISTENER}.address.socket_address.port_value`);
  });

  it('a bad enum value', () => {
    const at = [
      'static_resources',
      'listeners',
      0,
      'filter_chains',
      0,
      'filters',
      0,
      'typed_config',
      'forward_client_cert_details',
    ];
    const [issue] = errorsOf(mutate(at, 'TRUST_EVERYONE'));
    expect(issue?.path).toBe(`${HCM}.forward_client_cert_details`);
    expect(issue?.message).toMatch(/not a value of enum/);
  });

  it('a typed_config whose @type cannot be resolved', () => {
    const index = filterIndex('envoy.filters.http.ext_authz');
    const at = [
      'static_resources',
      'listeners',
      0,
      'filter_chains',
      0,
      'filters',
      0,
      'typed_config',
      'http_filters',
      index,
      'typed_config',
      '@type',
    ];
    const [issue] = errorsOf(
      mutate(at, 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthZ'),
    );
    expect(issue?.path).toBe(`${HCM}.http_filters[${index}].typed_config["@type"]`);
    expect(issue?.message).toMatch(/cannot resolve type/);
  });

  it('a route to an undefined cluster', () => {
    const [issue] = errorsOf(mutate([...ROUTE, 'cluster'], 'inferense'));
    expect(issue?.path).toBe(`${HCM}.route_config.virtual_hosts[0].routes[0].route.cluster`);
    expect(issue?.message).toMatch(/cluster "inferense" .* is not defined/);
  });

  it.each([
    ['ext_authz', ['grpc_service', 'envoy_grpc', 'cluster_name']],
    ['jwt_authn', ['providers', 'broker_inference', 'remote_jwks', 'http_uri', 'cluster']],
  ])('an undefined cluster in %s', (filter, rest) => {
    const index = filterIndex(`envoy.filters.http.${filter}`);
    const at = [
      'static_resources',
      'listeners',
      0,
      'filter_chains',
      0,
      'filters',
      0,
      'typed_config',
      'http_filters',
      index,
      'typed_config',
      ...rest,
    ];
    const [issue] = errorsOf(mutate(at, 'nowhere'));
    expect(issue?.path).toBe(`${HCM}.http_filters[${index}].typed_config.${rest.join('.')}`);
    expect(issue?.message).toMatch(/cluster "nowhere"/);
  });

  it('an undefined cluster for access logs and for tracing', () => {
    const base = [
      'static_resources',
      'listeners',
      0,
      'filter_chains',
      0,
      'filters',
      0,
      'typed_config',
    ];
    const als = [
      ...base,
      'access_log',
      0,
      'typed_config',
      'common_config',
      'grpc_service',
      'envoy_grpc',
      'cluster_name',
    ];
    const tracing = [
      ...base,
      'tracing',
      'provider',
      'typed_config',
      'grpc_service',
      'envoy_grpc',
      'cluster_name',
    ];
    expect(errorsOf(mutate(als, 'nowhere'))[0]?.path).toBe(
      `${HCM}.access_log[0].typed_config.common_config.grpc_service.envoy_grpc.cluster_name`,
    );
    expect(errorsOf(mutate(tracing, 'nowhere'))[0]?.path).toBe(
      `${HCM}.tracing.provider.typed_config.grpc_service.envoy_grpc.cluster_name`,
    );
  });
});

describe('bulwark envoy', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'bulwark-envoy-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('validate: exit 0 for the shipped config', async () => {
    const cli = capture();
    expect(await main(['node', 'bulwark', 'envoy', 'validate', SHIPPED], cli.io)).toBe(0);
    expect(cli.out()).toMatch(/valid Envoy bootstrap/);
  });

  it('validate: exit 3 naming the YAML path of each error', async () => {
    const broken = path.join(dir, 'envoy.yaml');
    writeFileSync(broken, mutate(['static_resources', 'clusters', 0, 'lb_policy'], 'RANDOMISH'));
    const cli = capture();
    expect(await main(['node', 'bulwark', 'envoy', 'validate', broken, '--json'], cli.io)).toBe(3);
    const report = JSON.parse(cli.out()) as { ok: boolean; issues: { path: string }[] };
    expect(report.ok).toBe(false);
    expect(report.issues.map((issue) => issue.path)).toEqual([
      'static_resources.clusters[0].lb_policy',
    ]);
  });

  it('validate: exit 4 when the file cannot be read', async () => {
    const cli = capture();
    const missing = path.join(dir, 'missing.yaml');
    expect(await main(['node', 'bulwark', 'envoy', 'validate', missing], cli.io)).toBe(4);
  });

  it('render: writes the config for a given bulwark.yaml', async () => {
    const config = path.join(dir, 'bulwark.yaml');
    writeFileSync(
      config,
      'trustDomain: example.org\nservices:\n  identity:\n    publicUrl: https://login.example.org\n  inference:\n    port: 9000\n',
    );
    const out = path.join(dir, 'out/envoy.yaml');
    const cli = capture();
    const args = ['node', 'bulwark', 'envoy', 'render', '--config', config, '--out', out];
    expect(await main(args, cli.io)).toBe(0);
    const rendered = parse(readFileSync(out, 'utf8')) as Obj;
    const inference = rendered.static_resources.clusters.find(
      (c: { name: string }) => c.name === 'inference',
    );
    expect(JSON.stringify(inference)).toContain('spiffe://example.org/svc/inference');
    expect(inference.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address).toEqual({
      socket_address: { address: 'inference', port_value: 9000 },
    });
    expect(JSON.stringify(rendered)).toContain('"issuer":"https://login.example.org"');
  });

  it('render: exit 4 for a missing bulwark.yaml, 1 naming the bad key of an invalid one', async () => {
    const missing = capture();
    const absent = path.join(dir, 'absent.yaml');
    const args = ['node', 'bulwark', 'envoy', 'render', '--out', '-', '--config'];
    expect(await main([...args, absent], missing.io)).toBe(4);
    const invalid = path.join(dir, 'bulwark.yaml');
    writeFileSync(invalid, 'services:\n  inference:\n    port: https\n');
    const cli = capture();
    expect(await main([...args, invalid], cli.io)).toBe(1);
    expect(cli.err()).toMatch(/services\.inference\.port/);
    expect(cli.out()).toBe('');
  });

  it('render --hosts config: reaches the services where bulwark.yaml says they listen', async () => {
    const cli = capture();
    const args = ['node', 'bulwark', 'envoy', 'render', '--config', EMBEDDED_CONFIG_PATH];
    expect(await main([...args, '--hosts', 'config', '--out', '-'], cli.io)).toBe(0);
    const rendered = parse(cli.out()) as Obj;
    const config = loadConfig({ file: EMBEDDED_CONFIG_PATH, env: {} });
    const addresses = Object.fromEntries(
      (rendered.static_resources.clusters as Obj[]).map((c) => [
        c.name,
        c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address,
      ]),
    );
    expect(addresses.inference).toEqual({
      address: config.services.inference.host,
      port_value: config.services.inference.port,
    });
    expect(addresses.otel_collector).toEqual({ address: '127.0.0.1', port_value: 4317 });
  });

  it('render: refuses a broker issuer that is not https', () => {
    expect(() =>
      renderEnvoyConfig({ ...defaultOptions(), issuer: 'http://identity.example' }),
    ).toThrow(/issuer must be an https URL/);
  });
});
