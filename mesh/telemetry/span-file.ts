import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { ExportResultCode, hrTimeToMilliseconds, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { redactAttributes } from './redact.ts';

/** One finished span as written to a JSON-lines span file. */
export interface SpanRecord {
  traceId: string;
  spanId: string;
  /** Absent on a root span. */
  parentSpanId?: string;
  name: string;
  kind: 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER';
  /** `service.name` of the resource that produced the span. */
  service: string;
  /** ISO 8601 UTC. */
  startTime: string;
  durationMs: number;
  status: { code: 'UNSET' | 'OK' | 'ERROR'; message?: string };
  attributes: Record<string, unknown>;
  events: Array<{ name: string; time: string; attributes?: Record<string, unknown> }>;
}

const KINDS = {
  [SpanKind.INTERNAL]: 'INTERNAL',
  [SpanKind.SERVER]: 'SERVER',
  [SpanKind.CLIENT]: 'CLIENT',
  [SpanKind.PRODUCER]: 'PRODUCER',
  [SpanKind.CONSUMER]: 'CONSUMER',
} as const;

const STATUS = {
  [SpanStatusCode.UNSET]: 'UNSET',
  [SpanStatusCode.OK]: 'OK',
  [SpanStatusCode.ERROR]: 'ERROR',
} as const;

/** Converts an SDK span to its {@link SpanRecord} (attributes scrubbed of secrets). */
export function toSpanRecord(span: ReadableSpan): SpanRecord {
  const ctx = span.spanContext();
  const record: SpanRecord = {
    traceId: ctx.traceId,
    spanId: ctx.spanId,
    name: span.name,
    kind: KINDS[span.kind],
    service: String(span.resource.attributes['service.name'] ?? 'unknown'),
    startTime: new Date(hrTimeToMilliseconds(span.startTime)).toISOString(),
    durationMs: hrTimeToMilliseconds(span.duration),
    status: { code: STATUS[span.status.code] },
    attributes: redactAttributes(span.attributes as Record<string, unknown>),
    events: span.events.map((event) => ({
      name: event.name,
      time: new Date(hrTimeToMilliseconds(event.time)).toISOString(),
      ...(event.attributes
        ? { attributes: redactAttributes(event.attributes as Record<string, unknown>) }
        : {}),
    })),
  };
  if (span.parentSpanContext) record.parentSpanId = span.parentSpanContext.spanId;
  if (span.status.message) record.status.message = span.status.message;
  return record;
}

/**
 * A span exporter that appends one JSON object per line ({@link SpanRecord}) to a file. Several
 * processes may share one file: each export is a single append of whole lines.
 *
 * @example
 * ```ts
 * provider = new BasicTracerProvider({
 *   spanProcessors: [new SimpleSpanProcessor(new JsonLinesSpanExporter('/tmp/spans.jsonl'))],
 * });
 * ```
 */
export class JsonLinesSpanExporter implements SpanExporter {
  readonly path: string;
  #stopped = false;

  constructor(path: string) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true });
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    if (this.#stopped) {
      resultCallback({ code: ExportResultCode.FAILED, error: new Error('exporter shut down') });
      return;
    }
    try {
      const text = spans.map((span) => JSON.stringify(toSpanRecord(span)) + '\n').join('');
      // One synchronous append per batch: lines from concurrent processes never interleave
      // within a line, and nothing is lost if the process exits right after the span ends.
      appendFileSync(this.path, text, { mode: 0o640 });
      resultCallback({ code: ExportResultCode.SUCCESS });
    } catch (err) {
      resultCallback({ code: ExportResultCode.FAILED, error: err as Error });
    }
  }

  async shutdown(): Promise<void> {
    this.#stopped = true;
  }

  async forceFlush(): Promise<void> {}
}

/** Reads every {@link SpanRecord} from a JSON-lines span file (missing file → none). */
export function readSpanFile(path: string): SpanRecord[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  // Only complete lines: several processes append to the file, and a reader may see the last
  // line half written.
  const lines = text.split('\n');
  lines.pop();
  return lines.filter((line) => line.trim() !== '').map((line) => JSON.parse(line) as SpanRecord);
}
