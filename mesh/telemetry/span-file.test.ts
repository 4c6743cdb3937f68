import { SpanKind, SpanStatusCode, trace, ROOT_CONTEXT } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { REDACTED } from './redact.ts';
import { createRpcSpanStarter } from './rpc-span.ts';
import { spanLine, toSpanRecord } from './span-file.ts';

describe('spanLine', () => {
  it('writes exactly the JSON of the span record, secrets scrubbed', async () => {
    const memory = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'audit "quoted"' }),
      spanProcessors: [new SimpleSpanProcessor(memory)],
    });
    const tracer = provider.getTracer('test');
    const root = tracer.startSpan('root \u2028 "name"', {
      kind: SpanKind.SERVER,
      attributes: {
        'rpc.method': 'Append',
        'network.peer.port': 5000,
        authorization: 'x',
        '7': 'numeric-like key',
        retried: false,
        ratio: -0,
        tags: ['a', 'b"c'],
        note: 'line\nbreak \u0000',
      },
    });
    root.addEvent('retry', { attempt: 2, token: 'secret-value' });
    root.setStatus({ code: SpanStatusCode.ERROR, message: 'INTERNAL: "bad"\n' });
    const child = tracer.startSpan('child', {}, trace.setSpan(ROOT_CONTEXT, root));
    child.end();
    root.end();
    await provider.forceFlush();
    const spans = memory.getFinishedSpans();
    expect(spans).toHaveLength(2);
    for (const span of spans) {
      const line = spanLine(span);
      expect(line).toBe(JSON.stringify(toSpanRecord(span)));
      expect(line).not.toContain('secret-value');
    }
    const rootRecord = JSON.parse(spanLine(spans[1]!)) as Record<string, unknown>;
    expect(rootRecord['attributes']).toMatchObject({ authorization: REDACTED });
    expect(rootRecord['parentSpanId']).toBeUndefined();
    expect(JSON.parse(spanLine(spans[0]!))).toMatchObject({
      parentSpanId: root.spanContext().spanId,
      status: { code: 'UNSET' },
      events: [],
    });
    await provider.shutdown();
  });

  it('writes mesh RPC spans the same way, own attributes over shared ones, secrets scrubbed', async () => {
    const memory = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'echo' }),
      spanProcessors: [new SimpleSpanProcessor(memory)],
    });
    const start = createRpcSpanStarter(provider.getTracer('test'));
    const shared = Object.freeze({ 'rpc.system': 'grpc', 'rpc.service': 's', 'rpc.method': 'M' });
    const plain = start('s/M', SpanKind.CLIENT, shared, ROOT_CONTEXT);
    const changed = start('s/M', SpanKind.SERVER, shared, trace.setSpan(ROOT_CONTEXT, plain));
    changed.setAttribute('rpc.method', 'N');
    changed.setAttribute('rpc.grpc.status_code', 13);
    changed.setStatus({ code: SpanStatusCode.ERROR, message: 'INTERNAL: "x"' });
    const secret = start('s/M', SpanKind.SERVER, shared, ROOT_CONTEXT);
    secret.setAttribute('access_token', 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln');
    for (const span of [changed, secret, plain]) span.end();
    await provider.forceFlush();
    const spans = memory.getFinishedSpans();
    expect(spans).toHaveLength(3);
    for (const span of spans) expect(spanLine(span)).toBe(JSON.stringify(toSpanRecord(span)));
    const [changedRecord, secretRecord, plainRecord] = spans.map(
      (span) => JSON.parse(spanLine(span)) as Record<string, unknown>,
    );
    expect(changedRecord!['attributes']).toEqual({
      'rpc.system': 'grpc',
      'rpc.service': 's',
      'rpc.method': 'N',
      'rpc.grpc.status_code': 13,
    });
    expect(changedRecord!['parentSpanId']).toBe(plain.spanContext().spanId);
    expect(secretRecord!['attributes']).toMatchObject({ access_token: REDACTED });
    expect(spanLine(spans[1]!)).not.toContain('eyJhbGci');
    expect(plainRecord!['attributes']).toEqual(shared);
    await provider.shutdown();
  });

  it('prints start times to the millisecond and durations to the microsecond', () => {
    const base = {
      spanContext: () => ({ traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: 1 }),
      name: 'n',
      kind: SpanKind.INTERNAL,
      resource: resourceFromAttributes({ 'service.name': 'svc' }),
      status: { code: SpanStatusCode.UNSET },
      attributes: {},
      events: [],
      links: [],
      ended: true,
      endTime: [0, 0],
      instrumentationScope: { name: 't' },
      droppedAttributesCount: 0,
      droppedEventsCount: 0,
      droppedLinksCount: 0,
    };
    const cases: Array<[[number, number], [number, number], string, number]> = [
      [[1767225600, 999_400_000], [0, 1_500_000], '2026-01-01T00:00:00.999Z', 1.5],
      [[1767225601, 5_000_000], [2, 50_000], '2026-01-01T00:00:01.005Z', 2000.05],
      [[1767225601, 0], [0, 1_234], '2026-01-01T00:00:01.000Z', 0.001],
      [[1767225601, 0], [0, 400], '2026-01-01T00:00:01.000Z', 0],
      [[1767225601, 0], [12, 0], '2026-01-01T00:00:01.000Z', 12000],
    ];
    for (const [startTime, duration, iso, ms] of cases) {
      const span = { ...base, startTime, duration } as unknown as Parameters<typeof spanLine>[0];
      const line = spanLine(span);
      expect(line).toBe(JSON.stringify(toSpanRecord(span)));
      expect(JSON.parse(line)).toMatchObject({ startTime: iso, durationMs: ms });
    }
  });
});
