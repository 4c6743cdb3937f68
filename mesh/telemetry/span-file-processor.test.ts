import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import {
  AlwaysOffSampler,
  BasicTracerProvider,
  InMemorySpanExporter,
  ParentBasedSampler,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { setGlobalErrorHandler, loggingErrorHandler } from '@opentelemetry/core';
import { readSpanFile, spanLine } from './span-file.ts';
import { JsonLinesSpanProcessor } from './span-file-processor.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bulwark-span-processor-'));
});
afterEach(() => {
  setGlobalErrorHandler(loggingErrorHandler());
  rmSync(dir, { recursive: true, force: true });
});

describe('JsonLinesSpanProcessor', () => {
  it('writes a full batch at once, the rest on flush, lines as the exporter writes them', async () => {
    const file = join(dir, 'nested', 'spans.jsonl');
    const memory = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
      spanProcessors: [
        new JsonLinesSpanProcessor(file, { maxBatchLines: 3, scheduledDelayMillis: 60_000 }),
        new SimpleSpanProcessor(memory),
      ],
    });
    const tracer = provider.getTracer('test');
    for (const name of ['a', 'b', 'c', 'd']) tracer.startSpan(name).end();
    // The first three filled a batch; the fourth waits for its timer or a flush.
    expect(readSpanFile(file).map((r) => r.name)).toEqual(['a', 'b', 'c']);
    await provider.forceFlush();
    expect(readSpanFile(file).map((r) => r.name)).toEqual(['a', 'b', 'c', 'd']);
    const lines = memory.getFinishedSpans().map((span) => JSON.parse(spanLine(span)) as unknown);
    expect(readSpanFile(file)).toEqual(lines);
    await provider.shutdown();
    // After shutdown nothing more is written.
    tracer.startSpan('late').end();
    expect(readSpanFile(file)).toHaveLength(4);
  });

  it('writes gathered lines when its delay passes', async () => {
    const file = join(dir, 'spans.jsonl');
    const provider = new BasicTracerProvider({
      spanProcessors: [new JsonLinesSpanProcessor(file, { scheduledDelayMillis: 10 })],
    });
    provider.getTracer('test').startSpan('soon').end();
    for (let i = 0; i < 200 && readSpanFile(file).length === 0; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(readSpanFile(file).map((r) => r.name)).toEqual(['soon']);
    await provider.shutdown();
  });

  it('skips unsampled spans and reports failed appends to the error handler', async () => {
    const errors: unknown[] = [];
    setGlobalErrorHandler((err) => errors.push(err));
    // A directory cannot be appended to.
    const provider = new BasicTracerProvider({
      sampler: new ParentBasedSampler({ root: new AlwaysOffSampler() }),
      spanProcessors: [new JsonLinesSpanProcessor(dir)],
    });
    const tracer = provider.getTracer('test');
    tracer.startSpan('unsampled').end();
    await provider.forceFlush();
    expect(errors).toEqual([]);
    const sampledParent = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      spanId: '00f067aa0ba902b7',
      traceFlags: 1,
      isRemote: true,
    });
    tracer.startSpan('sampled', {}, sampledParent).end();
    await provider.forceFlush();
    expect(errors).toHaveLength(1);
    await provider.shutdown();
  });

  it('keeps every line, in order, across batches larger than its buffer and very long lines', async () => {
    const file = join(dir, 'spans.jsonl');
    const memory = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
      spanProcessors: [
        new JsonLinesSpanProcessor(file, { maxBatchLines: 100_000, scheduledDelayMillis: 60_000 }),
        new SimpleSpanProcessor(memory),
      ],
    });
    const tracer = provider.getTracer('test');
    // About 600 KB of lines, and two lines longer than the 256 KiB buffer.
    for (let i = 0; i < 2000; i += 1) {
      const attributes: Record<string, string> = { note: `n${i} ` + 'é'.repeat(100) };
      if (i === 700 || i === 1999) attributes['blob'] = 'x'.repeat(300_000);
      tracer.startSpan(`s${i}`, { attributes }).end();
    }
    await provider.forceFlush();
    const written = readFileSync(file, 'utf8');
    const expected = memory
      .getFinishedSpans()
      .map((span) => spanLine(span) + '\n')
      .join('');
    expect(written.length).toBe(expected.length);
    expect(written === expected).toBe(true);
    await provider.shutdown();
  });
});
