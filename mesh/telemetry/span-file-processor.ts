import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { TraceFlags } from '@opentelemetry/api';
import { globalErrorHandler } from '@opentelemetry/core';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { spanLine } from './span-file.ts';

/** Options of {@link JsonLinesSpanProcessor}. */
export interface JsonLinesSpanProcessorOptions {
  /** Lines gathered before they are appended at once. Default 512 (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`). */
  maxBatchLines?: number;
  /** Longest wait before gathered lines are appended, in ms. Default 5000 (`OTEL_BSP_SCHEDULE_DELAY`). */
  scheduledDelayMillis?: number;
}

// Room for one batch of typical spans (a few hundred bytes each); a fuller buffer is written
// out before it overflows.
const BUFFER_BYTES = 256 * 1024;

/**
 * Batches sampled spans into a JSON-lines span file (the format of `JsonLinesSpanExporter`),
 * like a `BatchSpanProcessor` in front of that exporter, but each span is encoded as its line
 * when it ends, into a buffer that is reused batch after batch. A batch processor keeps every
 * span object until the batch is written, hundreds of them, long enough for the garbage
 * collector to move them to the old generation; kept strings would do the same. Here neither
 * the span nor its line outlives `onEnd`. Failed appends go to the OpenTelemetry error handler,
 * as the batch processor's do.
 *
 * @example
 * ```ts
 * new BasicTracerProvider({ spanProcessors: [new JsonLinesSpanProcessor('/tmp/spans.jsonl')] });
 * ```
 */
export class JsonLinesSpanProcessor implements SpanProcessor {
  readonly path: string;
  readonly #maxBatchLines: number;
  readonly #delay: number;
  #buffer: Buffer | undefined;
  #used = 0;
  #lines = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(path: string, options: JsonLinesSpanProcessorOptions = {}) {
    this.path = path;
    this.#maxBatchLines = Math.max(1, options.maxBatchLines ?? 512);
    this.#delay = Math.max(0, options.scheduledDelayMillis ?? 5000);
    mkdirSync(dirname(path), { recursive: true });
  }

  onStart(_span: Span): void {}

  onEnd(span: ReadableSpan): void {
    if (this.#stopped || (span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    try {
      this.#add(spanLine(span) + '\n');
    } catch (err) {
      globalErrorHandler(err as Error);
      return;
    }
    this.#lines += 1;
    if (this.#lines >= this.#maxBatchLines) this.#flush();
    else if (!this.#timer) {
      this.#timer = setTimeout(() => this.#flush(), this.#delay);
      this.#timer.unref();
    }
  }

  /** Encodes a line into the buffer (a line longer than the buffer is appended alone). */
  #add(line: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    if (this.#used + line.length * 3 > BUFFER_BYTES) {
      this.#flush();
      if (line.length * 3 > BUFFER_BYTES) {
        this.#append(Buffer.from(line));
        return;
      }
    }
    const buffer = (this.#buffer ??= Buffer.allocUnsafe(BUFFER_BYTES));
    this.#used += buffer.write(line, this.#used);
  }

  forceFlush(): Promise<void> {
    this.#flush();
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    this.#flush();
    this.#stopped = true;
    this.#buffer = undefined;
    return Promise.resolve();
  }

  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const used = this.#used;
    this.#used = 0;
    this.#lines = 0;
    if (used > 0) this.#append(this.#buffer!.subarray(0, used));
  }

  #append(bytes: Buffer): void {
    try {
      // One synchronous append per batch: lines from concurrent processes never interleave
      // within a line.
      appendFileSync(this.path, bytes, { mode: 0o640 });
    } catch (err) {
      globalErrorHandler(err as Error);
    }
  }
}
