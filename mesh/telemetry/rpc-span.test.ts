import {
  context,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Span,
  type SpanContext,
} from '@opentelemetry/api';
import {
  AlwaysOffSampler,
  BasicTracerProvider,
  InMemorySpanExporter,
  ParentBasedSampler,
  SimpleSpanProcessor,
  type ReadableSpan,
  type Sampler,
} from '@opentelemetry/sdk-trace-base';
import { createRpcSpanStarter } from './rpc-span.ts';

const ATTRIBUTES = { 'rpc.system': 'grpc', 'rpc.service': 's', 'rpc.method': 'M' };
const REMOTE: SpanContext = {
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  spanId: '00f067aa0ba902b7',
  traceFlags: TraceFlags.SAMPLED,
  isRemote: true,
};

function setup(options: { sampler?: Sampler; attributeCountLimit?: number } = {}) {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(memory)],
    ...(options.sampler ? { sampler: options.sampler } : {}),
    ...(options.attributeCountLimit
      ? { spanLimits: { attributeCountLimit: options.attributeCountLimit } }
      : {}),
  });
  const tracer = provider.getTracer('test');
  return { memory, provider, tracer, start: createRpcSpanStarter(tracer) };
}

describe('createRpcSpanStarter', () => {
  it('makes spans that exporters read like the SDK tracer’s own', async () => {
    const { memory, provider, tracer, start } = setup();
    const parent = trace.setSpanContext(ROOT_CONTEXT, REMOTE);
    const fast = start('s/M', SpanKind.SERVER, ATTRIBUTES, parent);
    const sdk = tracer.startSpan('s/M', { kind: SpanKind.SERVER, attributes: ATTRIBUTES }, parent);
    for (const span of [fast, sdk]) {
      span.setAttribute('rpc.grpc.status_code', 13);
      span.addEvent('retry', { attempt: 2 });
      span.recordException(new TypeError('boom'));
      span.setStatus({ code: SpanStatusCode.ERROR, message: 'INTERNAL' });
      span.end();
      // Ended spans no longer change.
      span.setAttribute('late', 1);
      span.setStatus({ code: SpanStatusCode.OK });
    }
    await provider.forceFlush();
    const [a, b] = memory.getFinishedSpans() as [ReadableSpan, ReadableSpan];
    const view = (s: ReadableSpan) => ({
      name: s.name,
      kind: s.kind,
      traceId: s.spanContext().traceId,
      traceFlags: s.spanContext().traceFlags,
      parent: s.parentSpanContext?.spanId,
      attributes: s.attributes,
      status: s.status,
      events: s.events.map((e) => ({ name: e.name, attributes: e.attributes })),
      ended: s.ended,
      resource: s.resource,
      scope: s.instrumentationScope,
      links: s.links,
      dropped: [s.droppedAttributesCount, s.droppedEventsCount, s.droppedLinksCount],
    });
    expect(view(a)).toEqual(view(b));
    expect(a.spanContext().spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(a.spanContext().spanId).not.toBe(REMOTE.spanId);
    // Times: start before end, both near now, duration consistent with them.
    const ms = (t: [number, number]) => t[0] * 1000 + t[1] / 1e6;
    expect(Math.abs(ms(a.startTime) - Date.now())).toBeLessThan(10_000);
    expect(ms(a.endTime)).toBeGreaterThanOrEqual(ms(a.startTime));
    expect(Math.abs(ms(a.duration) - (ms(a.endTime) - ms(a.startTime)))).toBeLessThan(0.01);
    // The shared attribute object is never changed.
    expect(ATTRIBUTES).toEqual({ 'rpc.system': 'grpc', 'rpc.service': 's', 'rpc.method': 'M' });
    await provider.shutdown();
  });

  it('starts a new valid trace without a parent', async () => {
    const { memory, provider, start } = setup();
    const span = start('s/M', SpanKind.CLIENT, ATTRIBUTES, ROOT_CONTEXT);
    span.end();
    await provider.forceFlush();
    const [only] = memory.getFinishedSpans();
    expect(only?.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(only?.spanContext().traceId).not.toBe('0'.repeat(32));
    expect(only?.parentSpanContext).toBeUndefined();
    await provider.shutdown();
  });

  it('follows the sampler: unsampled calls still carry the trace, but record nothing', async () => {
    const { memory, provider, start } = setup({
      sampler: new ParentBasedSampler({ root: new AlwaysOffSampler() }),
    });
    const root = start('s/M', SpanKind.SERVER, ATTRIBUTES, ROOT_CONTEXT);
    expect(root.isRecording()).toBe(false);
    expect(root.spanContext().traceFlags).toBe(TraceFlags.NONE);
    // A downstream call joins the same trace, unsampled.
    const child = start('s/M', SpanKind.CLIENT, ATTRIBUTES, trace.setSpan(ROOT_CONTEXT, root));
    expect(child.spanContext().traceId).toBe(root.spanContext().traceId);
    expect(child.isRecording()).toBe(false);
    // A sampled remote parent is still followed.
    const joined = start(
      's/M',
      SpanKind.SERVER,
      ATTRIBUTES,
      trace.setSpanContext(ROOT_CONTEXT, REMOTE),
    );
    expect(joined.isRecording()).toBe(true);
    for (const span of [root, child, joined]) span.end();
    await provider.forceFlush();
    expect(memory.getFinishedSpans().map((s) => s.spanContext().traceId)).toEqual([REMOTE.traceId]);
    await provider.shutdown();
  });

  it('applies the attribute limit and leaves suppressed contexts untraced', async () => {
    const { provider, start } = setup({ attributeCountLimit: 4 });
    const span = start('s/M', SpanKind.SERVER, ATTRIBUTES, ROOT_CONTEXT) as Span & ReadableSpan;
    span.setAttribute('a', 1);
    span.setAttribute('b', 2);
    expect(Object.keys(span.attributes)).toHaveLength(4);
    expect(span.droppedAttributesCount).toBe(1);
    span.end();
    const { suppressTracing } = await import('@opentelemetry/core');
    const suppressed = start('s/M', SpanKind.CLIENT, ATTRIBUTES, suppressTracing(context.active()));
    expect(suppressed.isRecording()).toBe(false);
    expect(trace.isSpanContextValid(suppressed.spanContext())).toBe(false);
    await provider.shutdown();
  });

  it('keeps the shared attributes untouched and each span’s own additions apart', async () => {
    const { memory, provider, start } = setup();
    const shared = Object.freeze({ ...ATTRIBUTES });
    const a = start('s/M', SpanKind.SERVER, shared, ROOT_CONTEXT);
    const b = start('s/M', SpanKind.SERVER, shared, ROOT_CONTEXT);
    a.setAttribute('rpc.grpc.status_code', 0);
    a.setAttribute('rpc.method', 'Renamed');
    b.setAttribute('rpc.grpc.status_code', 5);
    a.end();
    b.end();
    await provider.forceFlush();
    const [ra, rb] = memory.getFinishedSpans() as [ReadableSpan, ReadableSpan];
    expect(ra.attributes).toEqual({
      ...ATTRIBUTES,
      'rpc.method': 'Renamed',
      'rpc.grpc.status_code': 0,
    });
    expect(rb.attributes).toEqual({ ...ATTRIBUTES, 'rpc.grpc.status_code': 5 });
    // A shared key given a new value keeps its place; new keys come after.
    expect(Object.keys(ra.attributes)).toEqual([
      ...Object.keys(ATTRIBUTES),
      'rpc.grpc.status_code',
    ]);
    expect(shared).toEqual(ATTRIBUTES);
    await provider.shutdown();
  });

  it('gives every span its own random ids', async () => {
    const { provider, start } = setup();
    const traceIds = new Set<string>();
    const spanIds = new Set<string>();
    // More ids than one fill of the random pool holds.
    for (let i = 0; i < 3000; i += 1) {
      const span = start('s/M', SpanKind.CLIENT, ATTRIBUTES, ROOT_CONTEXT);
      const { traceId, spanId } = span.spanContext();
      expect(traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(spanId).toMatch(/^[0-9a-f]{16}$/);
      traceIds.add(traceId);
      spanIds.add(spanId);
      span.end();
    }
    expect(traceIds.size).toBe(3000);
    expect(spanIds.size).toBe(3000);
    await provider.shutdown();
  });
});
