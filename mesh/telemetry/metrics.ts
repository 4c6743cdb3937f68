import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import { TelemetryError } from './telemetry-error.ts';

/** The gRPC server metrics every Bulwark service exports, fed by the server interceptor. */
export interface GrpcServerMetrics {
  /** `grpc_server_started_total{grpc_service,grpc_method,grpc_type}` */
  readonly started: Counter<'grpc_service' | 'grpc_method' | 'grpc_type'>;
  /** `grpc_server_handled_total{grpc_service,grpc_method,grpc_type,grpc_code}` */
  readonly handled: Counter<'grpc_service' | 'grpc_method' | 'grpc_type' | 'grpc_code'>;
  /** `grpc_server_handling_seconds{grpc_service,grpc_method,grpc_type}` */
  readonly handlingSeconds: Histogram<'grpc_service' | 'grpc_method' | 'grpc_type'>;
}

/** Latency buckets in seconds, from half a millisecond (mesh hops are fast) to 10 s. */
export const GRPC_HANDLING_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/**
 * Registers the gRPC server metrics on `registry` (names as in go-grpc-prometheus, so existing
 * dashboards work).
 */
export function createGrpcServerMetrics(registry: Registry): GrpcServerMetrics {
  return {
    started: new Counter({
      name: 'grpc_server_started_total',
      help: 'RPCs started on the server.',
      labelNames: ['grpc_service', 'grpc_method', 'grpc_type'],
      registers: [registry],
    }),
    handled: new Counter({
      name: 'grpc_server_handled_total',
      help: 'RPCs completed on the server, by status code.',
      labelNames: ['grpc_service', 'grpc_method', 'grpc_type', 'grpc_code'],
      registers: [registry],
    }),
    handlingSeconds: new Histogram({
      name: 'grpc_server_handling_seconds',
      help: 'Time from the start of an RPC to its status being sent, in seconds.',
      labelNames: ['grpc_service', 'grpc_method', 'grpc_type'],
      buckets: GRPC_HANDLING_BUCKETS,
      registers: [registry],
    }),
  };
}

/** Options of {@link createMetricsRegistry}. */
export interface MetricsRegistryOptions {
  /** Added as a label to every metric (e.g. `{ service: 'audit' }`). Default: none. */
  defaultLabels?: Record<string, string>;
  /** Collect Node.js process metrics (`process_*`, `nodejs_*`). Default: `true`. */
  processMetrics?: boolean;
}

/** A fresh registry (never prom-client's global one), optionally with process metrics. */
export function createMetricsRegistry(options: MetricsRegistryOptions = {}): Registry {
  const registry = new Registry();
  if (options.defaultLabels) registry.setDefaultLabels(options.defaultLabels);
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  return registry;
}

/** Options of {@link serveMetrics}. */
export interface ServeMetricsOptions {
  /** TCP port; `0` picks a free one (read it back from the result). */
  port: number;
  /** Interface to bind. Default: `127.0.0.1` (metrics are not public by default). */
  host?: string;
}

/** A running `/metrics` endpoint. */
export interface MetricsServer {
  readonly host: string;
  readonly port: number;
  /** `http://<host>:<port>/metrics` */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves `registry` in the Prometheus text format at `GET /metrics`; every other path is 404.
 *
 * @example
 * ```ts
 * const server = await serveMetrics(registry, { port: 0 });
 * await fetch(server.url);
 * await server.close();
 * ```
 */
export async function serveMetrics(
  registry: Registry,
  options: ServeMetricsOptions,
): Promise<MetricsServer> {
  const host = options.host ?? '127.0.0.1';
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end();
      return;
    }
    registry.metrics().then(
      (body) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new TelemetryError(
          'ERR_TELEMETRY_METRICS_LISTEN',
          `cannot serve metrics on ${host}:${options.port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`,
          { cause: err },
        ),
      ),
    );
    server.listen(options.port, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    host,
    port,
    url: `http://${urlHost}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
