import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpanKind } from '@opentelemetry/api';
import { createLogger } from './logger.ts';
import { readSpanFile } from './span-file.ts';
import { createTelemetry, parseResourceAttributes, TRACE_FILE_ENV } from './telemetry.ts';
import { TelemetryError } from './telemetry-error.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bulwark-telemetry-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('createTelemetry', () => {
  it('exports nothing by default, so a laptop without a collector stays quiet', async () => {
    const telemetry = createTelemetry({ serviceName: 'audit', env: {}, processMetrics: false });
    expect(telemetry.exporters).toEqual([]);
    await telemetry.shutdown();
  });

  it('selects OTLP when an endpoint is set or OTEL_TRACES_EXPORTER asks for it', async () => {
    const byEndpoint = createTelemetry({
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1' },
      processMetrics: false,
    });
    const byName = createTelemetry({
      env: { OTEL_TRACES_EXPORTER: 'otlp,console' },
      processMetrics: false,
    });
    const none = createTelemetry({
      env: { OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1' },
      processMetrics: false,
    });
    const disabled = createTelemetry({
      env: { OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' },
      memoryExporter: true,
      processMetrics: false,
    });
    expect(byEndpoint.exporters).toEqual(['otlp']);
    expect(byName.exporters).toEqual(['otlp', 'console']);
    expect(none.exporters).toEqual([]);
    expect(disabled.exporters).toEqual([]);
    await Promise.all([byEndpoint, byName, none, disabled].map((t) => t.shutdown()));
  });

  it('refuses exporters and protocols it cannot honour, naming the variable', () => {
    expect(() =>
      createTelemetry({ env: { OTEL_TRACES_EXPORTER: 'zipkin' }, processMetrics: false }),
    ).toThrow(/OTEL_TRACES_EXPORTER: unsupported exporter "zipkin"/);
    let caught: unknown;
    try {
      createTelemetry({
        env: { OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' },
        processMetrics: false,
      });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(TelemetryError);
    expect((caught as TelemetryError).code).toBe('ERR_TELEMETRY_CONFIG');
    expect((caught as TelemetryError).message).toContain('OTEL_EXPORTER_OTLP_PROTOCOL');
  });

  it('propagates W3C trace context by default and refuses unknown propagators', async () => {
    const telemetry = createTelemetry({ env: {}, processMetrics: false });
    expect(telemetry.propagator.fields()).toEqual(['traceparent', 'tracestate']);
    const both = createTelemetry({
      env: { OTEL_PROPAGATORS: 'tracecontext,baggage' },
      processMetrics: false,
    });
    expect(both.propagator.fields()).toEqual(['traceparent', 'tracestate', 'baggage']);
    expect(() =>
      createTelemetry({ env: { OTEL_PROPAGATORS: 'b3' }, processMetrics: false }),
    ).toThrow(/OTEL_PROPAGATORS: unsupported propagator "b3"/);
    await Promise.all([telemetry.shutdown(), both.shutdown()]);
  });

  it('takes the service name from OTEL_SERVICE_NAME when none is given', async () => {
    const telemetry = createTelemetry({
      env: { OTEL_SERVICE_NAME: 'from-env' },
      processMetrics: false,
    });
    expect(telemetry.serviceName).toBe('from-env');
    const explicit = createTelemetry({
      serviceName: 'policy',
      env: { OTEL_SERVICE_NAME: 'from-env' },
      processMetrics: false,
    });
    expect(explicit.serviceName).toBe('policy');
    await Promise.all([telemetry.shutdown(), explicit.shutdown()]);
  });

  it('writes spans as JSON lines to the file named by the environment, scrubbed', async () => {
    const file = join(dir, 'spans', 'trace.jsonl');
    const telemetry = createTelemetry({
      serviceName: 'inference',
      env: { [TRACE_FILE_ENV]: file, OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test' },
      processMetrics: false,
    });
    expect(telemetry.exporters).toEqual(['file']);
    const span = telemetry.tracer.startSpan('work', { kind: SpanKind.INTERNAL });
    span.setAttribute('note', 'Bearer abc.def-123456789');
    span.setAttribute('authorization', 'anything');
    span.end();
    telemetry.tracer.startSpan('second').end();
    await telemetry.shutdown();
    const records = readSpanFile(file);
    expect(records.map((r) => r.name)).toEqual(['work', 'second']);
    expect(records[0]).toMatchObject({
      service: 'inference',
      kind: 'INTERNAL',
      status: { code: 'UNSET' },
      attributes: { note: 'Bearer [REDACTED]', authorization: '[REDACTED]' },
    });
    expect(records[0]?.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(records[0]?.traceId).not.toBe(records[1]?.traceId);
    expect(readSpanFile(join(dir, 'missing.jsonl'))).toEqual([]);
  });

  it('reports failed span exports to the logger', async () => {
    const lines: string[] = [];
    const logger = createLogger({ service: 'audit', destination: { write: (l) => lines.push(l) } });
    // A directory cannot be appended to, so every export fails.
    const telemetry = createTelemetry({
      serviceName: 'audit',
      traceFile: dir,
      traceFileMode: 'simple',
      logger,
      env: {},
      processMetrics: false,
    });
    telemetry.tracer.startSpan('lost').end();
    await telemetry.shutdown();
    expect(lines.map((l) => JSON.parse(l) as Record<string, unknown>)).toContainEqual(
      expect.objectContaining({ level: 'warn', event: 'telemetry.export_failed' }),
    );
  });

  it('keeps the metrics registry per service', async () => {
    const a = createTelemetry({ serviceName: 'a', env: {}, processMetrics: false });
    const b = createTelemetry({ serviceName: 'b', env: {}, processMetrics: false });
    a.grpcMetrics.handled.inc({
      grpc_service: 's',
      grpc_method: 'm',
      grpc_type: 'unary',
      grpc_code: 'OK',
    });
    expect(await a.registry.metrics()).toContain('grpc_code="OK"} 1');
    expect(await b.registry.metrics()).not.toContain('grpc_code="OK"');
    await Promise.all([a.shutdown(), b.shutdown()]);
  });
});

describe('parseResourceAttributes', () => {
  it('parses percent-encoded pairs and skips malformed ones', () => {
    expect(parseResourceAttributes('a=1, b=hello%20world,=x,c,d=%E0%A4%A')).toEqual({
      a: '1',
      b: 'hello world',
    });
  });
});
