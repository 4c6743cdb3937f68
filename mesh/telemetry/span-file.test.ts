import { SpanKind, SpanStatusCode, trace, ROOT_CONTEXT } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { REDACTED } from './redact.ts';
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
});
