import type { Interceptor, ServerInterceptor } from '@grpc/grpc-js';
import type { TextMapPropagator, Tracer } from '@opentelemetry/api';
import {
  CompositePropagator,
  setGlobalErrorHandler,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type Sampler,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { ensureContextManager } from './context-manager.ts';
import { createClientInterceptor } from './grpc-client-interceptor.ts';
import { createServerInterceptor } from './grpc-server-interceptor.ts';
import {
  createGrpcServerMetrics,
  createMetricsRegistry,
  serveMetrics,
  type GrpcServerMetrics,
  type MetricsServer,
  type ServeMetricsOptions,
} from './metrics.ts';
import { JsonLinesSpanExporter } from './span-file.ts';
import { JsonLinesSpanProcessor } from './span-file-processor.ts';
import { TelemetryError } from './telemetry-error.ts';

/**
 * Environment variable naming the JSON-lines span file. It is the `telemetry.traceFile` key of
 * `bulwark.yaml` in its `BULWARK_*` override form, so the file and the variable agree.
 */
export const TRACE_FILE_ENV = 'BULWARK_TELEMETRY__TRACE_FILE';

/** Options of {@link createTelemetry}. Every field is optional; defaults are listed. */
export interface TelemetryOptions {
  /** `service.name`. Default: `OTEL_SERVICE_NAME`, else `'bulwark'`. */
  serviceName?: string;
  /** `service.version`. Default: none. */
  serviceVersion?: string;
  /** Where `OTEL_*` and `BULWARK_TELEMETRY__TRACE_FILE` are read. Default: `process.env`. */
  env?: Record<string, string | undefined>;
  /** Append finished spans as JSON lines to this file. Default: `$BULWARK_TELEMETRY__TRACE_FILE`. */
  traceFile?: string;
  /**
   * How spans reach the trace file: `'batch'` (each span becomes its line when it ends; lines
   * are appended 512 at a time or after 5 s, per `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` and
   * `OTEL_BSP_SCHEDULE_DELAY`; flushed by `shutdown()`) or `'simple'` (written as each span
   * ends; for tests and short-lived processes). Default: `'batch'`.
   */
  traceFileMode?: 'batch' | 'simple';
  /** Keep finished spans in memory (`telemetry.memoryExporter`). Default: `false`. */
  memoryExporter?: boolean;
  /** Extra span processors, after the built-in ones. */
  spanProcessors?: SpanProcessor[];
  /**
   * Sampler. Default: `OTEL_TRACES_SAMPLER`/`_ARG` (read from `process.env` by the SDK), else
   * parent-based always-on. Unsampled calls still propagate trace ids and are still counted.
   */
  sampler?: Sampler;
  /** Metrics registry. Default: a new registry (never prom-client's global one). */
  registry?: Registry;
  /** Collect Node.js process metrics into a new registry. Default: `true`. */
  processMetrics?: boolean;
  /**
   * Where failed span exports are reported (`telemetry.export_failed`, at `warn`). The
   * OpenTelemetry error handler is process-wide: the last telemetry given a logger wins.
   * Default: failures are dropped silently.
   */
  logger?: Logger;
}

/** Tracing and metrics for one service; hand its interceptors to the mesh kit. */
export interface Telemetry {
  readonly serviceName: string;
  readonly tracerProvider: BasicTracerProvider;
  /** Tracer for the service's own spans. */
  readonly tracer: Tracer;
  /** W3C trace context (and baggage when `OTEL_PROPAGATORS` asks for it). */
  readonly propagator: TextMapPropagator;
  /** The service's metrics registry; add service metrics with `registers: [registry]`. */
  readonly registry: Registry;
  readonly grpcMetrics: GrpcServerMetrics;
  /**
   * SERVER spans + gRPC server metrics. Put it first in the server's interceptors; a mesh
   * server given it as its only extra interceptor runs it inside its own single interceptor.
   */
  readonly serverInterceptor: ServerInterceptor;
  /** CLIENT spans + trace context injection. */
  readonly clientInterceptor: Interceptor;
  /** Set when `memoryExporter: true`. */
  readonly memoryExporter: InMemorySpanExporter | undefined;
  /** Names of the active span exporters (`'otlp'`, `'console'`, `'file'`, `'memory'`). */
  readonly exporters: readonly string[];
  /** Serves `/metrics` for this registry; closed by `shutdown()`. */
  serveMetrics(options: ServeMetricsOptions): Promise<MetricsServer>;
  /** Exports every span ended so far. */
  forceFlush(): Promise<void>;
  /** Flushes and stops the exporters and closes the metrics servers. */
  shutdown(): Promise<void>;
}

/**
 * Sets up tracing and metrics for one service.
 *
 * Span exporters, from the standard variables: `OTEL_TRACES_EXPORTER` (comma list of `otlp`,
 * `console`, `none`); when it is unset, OTLP is used only if `OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, so a laptop without a collector stays quiet.
 * OTLP speaks `http/protobuf` (Jaeger and the Collector accept it on port 4318); its headers,
 * timeout and batching come from the usual `OTEL_EXPORTER_OTLP_*` and `OTEL_BSP_*` variables.
 * `OTEL_SDK_DISABLED=true` turns every exporter off (spans still propagate).
 * `OTEL_RESOURCE_ATTRIBUTES` adds resource attributes; `OTEL_PROPAGATORS` picks `tracecontext`
 * (default), `baggage` or `none`.
 *
 * @example
 * ```ts
 * const telemetry = createTelemetry({ serviceName: 'audit' });
 * const metrics = await telemetry.serveMetrics({ port: 9442 });
 * const server = createMeshServer({ ..., interceptors: [telemetry.serverInterceptor] });
 * // on shutdown
 * await telemetry.shutdown();
 * ```
 */
export function createTelemetry(options: TelemetryOptions = {}): Telemetry {
  const env = options.env ?? process.env;
  const serviceName = options.serviceName ?? nonEmpty(env['OTEL_SERVICE_NAME']) ?? 'bulwark';
  const propagator = createPropagator(env['OTEL_PROPAGATORS']);
  ensureContextManager();
  const logger = options.logger;
  if (logger) {
    setGlobalErrorHandler((err) =>
      logger.warn({ event: 'telemetry.export_failed', err }, 'span export failed'),
    );
  }

  const processors: SpanProcessor[] = [];
  const exporters: string[] = [];
  const disabled = env['OTEL_SDK_DISABLED']?.trim().toLowerCase() === 'true';
  let memory: InMemorySpanExporter | undefined;
  if (!disabled) {
    for (const name of selectExporters(env)) {
      if (name === 'otlp') processors.push(new BatchSpanProcessor(createOtlpExporter(env)));
      else processors.push(new SimpleSpanProcessor(new ConsoleSpanExporter()));
      exporters.push(name);
    }
    const traceFile = options.traceFile ?? nonEmpty(env[TRACE_FILE_ENV]);
    if (traceFile) {
      processors.push(
        options.traceFileMode === 'simple'
          ? new SimpleSpanProcessor(new JsonLinesSpanExporter(traceFile))
          : new JsonLinesSpanProcessor(traceFile, {
              maxBatchLines: positiveInteger(env['OTEL_BSP_MAX_EXPORT_BATCH_SIZE']),
              scheduledDelayMillis: positiveInteger(env['OTEL_BSP_SCHEDULE_DELAY']),
            }),
      );
      exporters.push('file');
    }
    if (options.memoryExporter) {
      memory = new InMemorySpanExporter();
      processors.push(new SimpleSpanProcessor(memory));
      exporters.push('memory');
    }
  }
  processors.push(...(options.spanProcessors ?? []));

  const resource = defaultResource()
    .merge(resourceFromAttributes(parseResourceAttributes(env['OTEL_RESOURCE_ATTRIBUTES'])))
    .merge(
      resourceFromAttributes({
        'service.name': serviceName,
        ...(options.serviceVersion ? { 'service.version': options.serviceVersion } : {}),
      }),
    );
  // Not registered globally: each service keeps its own provider (no module singletons); the
  // process-wide context manager is all the OpenTelemetry API needs for propagation.
  const tracerProvider = new BasicTracerProvider({
    resource,
    spanProcessors: processors,
    ...(options.sampler ? { sampler: options.sampler } : {}),
  });
  const tracer = tracerProvider.getTracer('bulwark');
  const registry =
    options.registry ?? createMetricsRegistry({ processMetrics: options.processMetrics ?? true });
  const grpcMetrics = createGrpcServerMetrics(registry);
  const metricsServers = new Set<MetricsServer>();

  return {
    serviceName,
    tracerProvider,
    tracer,
    propagator,
    registry,
    grpcMetrics,
    serverInterceptor: createServerInterceptor({ tracer, propagator, metrics: grpcMetrics }),
    clientInterceptor: createClientInterceptor({ tracer, propagator }),
    memoryExporter: memory,
    exporters,
    async serveMetrics(serveOptions) {
      const server = await serveMetrics(registry, serveOptions);
      metricsServers.add(server);
      return {
        host: server.host,
        port: server.port,
        url: server.url,
        close: async () => {
          metricsServers.delete(server);
          await server.close();
        },
      };
    },
    forceFlush: () => tracerProvider.forceFlush(),
    async shutdown() {
      await Promise.all([...metricsServers].map((server) => server.close()));
      metricsServers.clear();
      await tracerProvider.shutdown();
    },
  };
}

function positiveInteger(value: string | undefined): number | undefined {
  const number = Number(nonEmpty(value));
  return Number.isInteger(number) && number > 0 ? number : undefined;
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

function selectExporters(env: Record<string, string | undefined>): Array<'otlp' | 'console'> {
  const listed = nonEmpty(env['OTEL_TRACES_EXPORTER']);
  if (!listed) {
    const endpoint =
      nonEmpty(env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']) ??
      nonEmpty(env['OTEL_EXPORTER_OTLP_ENDPOINT']);
    return endpoint ? ['otlp'] : [];
  }
  const names = new Set(listed.split(',').map((name) => name.trim().toLowerCase()));
  for (const name of names) {
    if (name !== 'otlp' && name !== 'console' && name !== 'none') {
      throw new TelemetryError(
        'ERR_TELEMETRY_CONFIG',
        `OTEL_TRACES_EXPORTER: unsupported exporter "${name}" (supported: otlp, console, none)`,
      );
    }
  }
  if (names.has('none')) return [];
  return [...names] as Array<'otlp' | 'console'>;
}

function createOtlpExporter(env: Record<string, string | undefined>): OTLPTraceExporter {
  const protocol =
    nonEmpty(env['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL']) ??
    nonEmpty(env['OTEL_EXPORTER_OTLP_PROTOCOL']) ??
    'http/protobuf';
  if (protocol !== 'http/protobuf') {
    throw new TelemetryError(
      'ERR_TELEMETRY_CONFIG',
      `OTEL_EXPORTER_OTLP_PROTOCOL: "${protocol}" is not supported; use "http/protobuf" ` +
        '(OTLP over HTTP, port 4318 on Jaeger and the OpenTelemetry Collector)',
    );
  }
  const tracesEndpoint = nonEmpty(env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']);
  const endpoint = nonEmpty(env['OTEL_EXPORTER_OTLP_ENDPOINT']);
  // The signal-specific endpoint is used as is; the generic one gets `/v1/traces` appended.
  const url =
    tracesEndpoint ?? (endpoint ? `${endpoint.replace(/\/+$/, '')}/v1/traces` : undefined);
  return new OTLPTraceExporter(url ? { url } : {});
}

/**
 * `OTEL_PROPAGATORS`: `tracecontext` (default) and/or `baggage`; `none` propagates nothing.
 * Baggage is off by default: Bulwark does not use it, and it costs a header on every call.
 */
function createPropagator(setting: string | undefined): TextMapPropagator {
  const names = new Set(
    (nonEmpty(setting) ?? 'tracecontext').split(',').map((name) => name.trim().toLowerCase()),
  );
  const propagators: TextMapPropagator[] = [];
  for (const name of names) {
    if (name === 'tracecontext') propagators.push(new W3CTraceContextPropagator());
    else if (name === 'baggage') propagators.push(new W3CBaggagePropagator());
    else if (name !== 'none') {
      throw new TelemetryError(
        'ERR_TELEMETRY_CONFIG',
        `OTEL_PROPAGATORS: unsupported propagator "${name}" (supported: tracecontext, baggage, none)`,
      );
    }
  }
  if (names.has('none')) return new CompositePropagator({ propagators: [] });
  return propagators.length === 1 ? propagators[0]! : new CompositePropagator({ propagators });
}

/** `OTEL_RESOURCE_ATTRIBUTES`: `key1=value1,key2=value2`, values percent-encoded. */
export function parseResourceAttributes(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (text ?? '').split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const key = pair.slice(0, eq).trim();
    try {
      out[key] = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch {
      // A malformed escape drops that attribute, as the specification asks.
    }
  }
  return out;
}
