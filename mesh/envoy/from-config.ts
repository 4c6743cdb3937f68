import type { EnvoyRenderOptions, GatewayUpstream, UpstreamEndpoint } from './render-options.ts';

/** The parts of the loaded `bulwark.yaml` the gateway config is rendered from. */
export interface MeshConfigForEnvoy {
  trustDomain: string;
  services: Record<
    GatewayUpstream | 'gateway',
    { host: string; port: number; publicUrl?: string | undefined }
  >;
}

/** How the gateway finds the services. */
export type UpstreamHosts =
  /** By service name (`inference`, `policy`, ...): DNS in docker compose and Kubernetes. */
  | 'service-names'
  /** By the host each service listens on in `bulwark.yaml` (one machine). */
  | 'config';

/**
 * Maps the loaded `bulwark.yaml` to render options: ports, trust domain and the broker's
 * public URL (the issuer) come from the config; hosts are the service names unless `hosts`
 * is `config`.
 *
 * @example
 * ```ts
 * const options = renderOptionsFromConfig(await loadConfig('bulwark.yaml'));
 * writeFileSync('deploy/envoy/envoy.yaml', renderEnvoyYaml(options));
 * ```
 */
export function renderOptionsFromConfig(
  config: MeshConfigForEnvoy,
  hosts: UpstreamHosts = 'service-names',
): EnvoyRenderOptions {
  const endpoint = (name: GatewayUpstream): UpstreamEndpoint => ({
    host: hosts === 'service-names' ? name : connectHost(config.services[name].host),
    port: config.services[name].port,
  });
  const identity = config.services.identity;
  return {
    trustDomain: config.trustDomain,
    listen: { host: '0.0.0.0', port: config.services.gateway.port },
    upstreams: {
      inference: endpoint('inference'),
      policy: endpoint('policy'),
      audit: endpoint('audit'),
      identity: endpoint('identity'),
    },
    issuer: identity.publicUrl ?? `https://localhost:${identity.port}`,
    // The OTLP/gRPC port of Jaeger and the OpenTelemetry Collector.
    collector: { host: hosts === 'service-names' ? 'jaeger' : '127.0.0.1', port: 4317 },
  };
}

/** A wildcard listen address is not something to connect to. */
function connectHost(host: string): string {
  return host === '0.0.0.0' || host === '::' || host === '[::]' ? '127.0.0.1' : host;
}
