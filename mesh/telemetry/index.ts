/**
 * Telemetry for every Bulwark service: OpenTelemetry tracing with W3C trace context over gRPC
 * metadata (grpc-js interceptors), Prometheus metrics on a per-service registry, and pino JSON
 * logs that carry the trace id and never a secret.
 *
 * @example
 * ```ts
 * const telemetry = createTelemetry({ serviceName: 'audit' });
 * const logger = createLogger({ service: 'audit' });
 * const metrics = await telemetry.serveMetrics({ port: 9442 });
 * // createMeshServer({ ..., interceptors: [telemetry.serverInterceptor] })
 * // createMeshClient({ ..., interceptors: [telemetry.clientInterceptor] })
 * ```
 */
export {
  createTelemetry,
  parseResourceAttributes,
  TRACE_FILE_ENV,
  type Telemetry,
  type TelemetryOptions,
} from './telemetry.ts';
export {
  createServerInterceptor,
  type ServerInterceptorOptions,
} from './grpc-server-interceptor.ts';
export {
  createClientInterceptor,
  type ClientInterceptorOptions,
} from './grpc-client-interceptor.ts';
export { grpcCodeName, splitMethodPath } from './grpc-names.ts';
export {
  createGrpcServerMetrics,
  createMetricsRegistry,
  GRPC_HANDLING_BUCKETS,
  serveMetrics,
  type GrpcServerMetrics,
  type MetricsRegistryOptions,
  type MetricsServer,
  type ServeMetricsOptions,
} from './metrics.ts';
export { createLogger, type LoggerOptions } from './logger.ts';
export { isSecretKey, redactAttributes, redactValue, REDACTED, scrubSecrets } from './redact.ts';
export { JsonLinesSpanExporter, readSpanFile, toSpanRecord, type SpanRecord } from './span-file.ts';
export {
  JsonLinesSpanProcessor,
  type JsonLinesSpanProcessorOptions,
} from './span-file-processor.ts';
export { AsyncLocalContextManager, ensureContextManager } from './context-manager.ts';
export { TelemetryError, type TelemetryErrorCode } from './telemetry-error.ts';
