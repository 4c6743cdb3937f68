import type protobuf from 'protobufjs';
import { formatPath, isRecord, readField, type PathSegment } from './config-path.ts';
import type { ConfigIssue, FieldObserver } from './walk-message.ts';

/** Fields that name a cluster, by full proto name, with how a message should call them. */
const CLUSTER_REFERENCES: Readonly<Record<string, { what: string; grpc: boolean }>> = {
  '.envoy.config.route.v3.RouteAction.cluster': { what: 'a route', grpc: false },
  '.envoy.config.route.v3.WeightedCluster.ClusterWeight.name': {
    what: 'a weighted route',
    grpc: false,
  },
  '.envoy.config.route.v3.RouteAction.RequestMirrorPolicy.cluster': {
    what: 'a request mirror policy',
    grpc: false,
  },
  '.envoy.config.core.v3.GrpcService.EnvoyGrpc.cluster_name': {
    what: 'a gRPC service',
    grpc: true,
  },
  '.envoy.config.core.v3.HttpUri.cluster': { what: 'an HTTP URI', grpc: false },
  '.envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.cluster': {
    what: 'a TCP proxy',
    grpc: false,
  },
  '.envoy.config.trace.v3.ZipkinConfig.collector_cluster': { what: 'a tracer', grpc: false },
  '.envoy.config.bootstrap.v3.ClusterManager.local_cluster_name': {
    what: 'cluster_manager',
    grpc: false,
  },
};

const STATIC_CLUSTERS = '.envoy.config.bootstrap.v3.Bootstrap.StaticResources.clusters';
const CDS_CONFIG = '.envoy.config.bootstrap.v3.Bootstrap.DynamicResources.cds_config';
const HTTP_FILTERS =
  '.envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.http_filters';
const ROUTER = 'envoy.extensions.filters.http.router.v3.Router';
const HTTP_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

interface Reference {
  cluster: string;
  what: string;
  grpc: boolean;
  at: PathSegment[];
}

/**
 * Collects what the semantic checks need while the structural walk runs (so camelCase and
 * snake_case keys are both understood), then reports dangling references.
 *
 * @example
 * ```ts
 * const refs = createReferenceCheck();
 * walkMessage(config, bootstrap, [], { schema, issues, observe: refs.observe });
 * issues.push(...refs.finish());
 * ```
 */
export function createReferenceCheck(): { observe: FieldObserver; finish: () => ConfigIssue[] } {
  const references: Reference[] = [];
  const clusters = new Map<string, unknown>();
  const issues: ConfigIssue[] = [];
  let dynamicClusters = false;

  const observe: FieldObserver = (field: protobuf.Field, value, at) => {
    const reference = CLUSTER_REFERENCES[field.fullName];
    if (reference && typeof value === 'string') {
      references.push({ cluster: value, ...reference, at });
    } else if (field.fullName === STATIC_CLUSTERS && Array.isArray(value)) {
      value.forEach((cluster: unknown, index) => {
        const name = readField(cluster, 'name');
        if (typeof name !== 'string') return;
        if (clusters.has(name)) {
          issues.push(issue([...at, index, 'name'], `cluster "${name}" is defined twice`));
        }
        clusters.set(name, cluster);
      });
    } else if (field.fullName === CDS_CONFIG) {
      dynamicClusters = true;
    } else if (field.fullName === HTTP_FILTERS && Array.isArray(value)) {
      checkRouterLast(value, at, issues);
    }
  };

  const finish = (): ConfigIssue[] => {
    for (const ref of references) {
      const cluster = clusters.get(ref.cluster);
      if (cluster === undefined) {
        const message =
          `cluster "${ref.cluster}" used by ${ref.what} is not defined in static_resources.clusters` +
          (dynamicClusters ? ' (it may come from CDS)' : '');
        issues.push(issue(ref.at, message, dynamicClusters ? 'warning' : 'error'));
      } else if (ref.grpc && !speaksHttp2(cluster)) {
        issues.push(
          issue(
            ref.at,
            `cluster "${ref.cluster}" carries gRPC but is not configured for HTTP/2 ` +
              `(set typed_extension_protocol_options["${HTTP_OPTIONS}"].explicit_http_config.http2_protocol_options)`,
          ),
        );
      }
    }
    return issues;
  };
  return { observe, finish };
}

/** Envoy refuses a filter chain whose terminal router filter is not last. */
function checkRouterLast(filters: unknown[], at: PathSegment[], issues: ConfigIssue[]): void {
  filters.forEach((filter, index) => {
    const typed = readField(filter, 'typed_config');
    const url = isRecord(typed) ? typed['@type'] : undefined;
    const isRouter =
      (typeof url === 'string' && url.endsWith(`/${ROUTER}`)) ||
      (typed === undefined && readField(filter, 'name') === 'envoy.filters.http.router');
    if (isRouter && index !== filters.length - 1) {
      issues.push(issue([...at, index], 'the router filter must be the last HTTP filter'));
    }
  });
  const last = filters[filters.length - 1];
  const lastTyped = readField(last, 'typed_config');
  const lastUrl = isRecord(lastTyped) ? lastTyped['@type'] : undefined;
  if (filters.length > 0 && typeof lastUrl === 'string' && !lastUrl.endsWith(`/${ROUTER}`)) {
    issues.push(issue([...at, filters.length - 1], 'the last HTTP filter must be the router'));
  }
}

function speaksHttp2(cluster: unknown): boolean {
  if (readField(cluster, 'http2_protocol_options') !== undefined) return true;
  const options = readField(cluster, 'typed_extension_protocol_options');
  const http = isRecord(options) ? options[HTTP_OPTIONS] : undefined;
  if (readField(http, 'auto_config') !== undefined) return true;
  const explicit = readField(http, 'explicit_http_config');
  return readField(explicit, 'http2_protocol_options') !== undefined;
}

function issue(
  at: PathSegment[],
  message: string,
  severity: ConfigIssue['severity'] = 'error',
): ConfigIssue {
  return { severity, path: formatPath(at), segments: [...at], message };
}
