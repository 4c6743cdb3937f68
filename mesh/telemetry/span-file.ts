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
 * `JSON.stringify(toSpanRecord(span))`, the same text, built without the intermediate record:
 * the exporter writes one line per span on the service's own thread.
 */
export function spanLine(span: ReadableSpan): string {
  const ctx = span.spanContext();
  const attributes = redactAttributes(span.attributes as Record<string, unknown>);
  let line =
    `{"traceId":${JSON.stringify(ctx.traceId)},"spanId":${JSON.stringify(ctx.spanId)}` +
    `,"name":${jsonOf(span.name)},"kind":"${KINDS[span.kind]}"` +
    `,"service":${serviceJsonOf(span.resource)}` +
    `,"startTime":"${isoTime(hrTimeToMilliseconds(span.startTime))}"` +
    `,"durationMs":${JSON.stringify(hrTimeToMilliseconds(span.duration))}` +
    `,"status":{"code":"${STATUS[span.status.code]}"` +
    (span.status.message ? `,"message":${JSON.stringify(span.status.message)}}` : '}') +
    `,"attributes":${attributesJson(attributes)}`;
  line +=
    span.events.length === 0
      ? ',"events":[]'
      : `,"events":${JSON.stringify(toSpanRecord(span).events)}`;
  if (span.parentSpanContext) {
    line += `,"parentSpanId":${JSON.stringify(span.parentSpanContext.spanId)}`;
  }
  return line + '}';
}

// Names, attribute keys and most attribute values repeat from span to span: their JSON is kept
// (bounded; long strings are not kept).
const jsonCache = new Map<string, string>();
function jsonOf(text: string): string {
  let json = jsonCache.get(text);
  if (json === undefined) {
    json = JSON.stringify(text);
    if (text.length <= 256) {
      if (jsonCache.size >= 4096) jsonCache.clear();
      jsonCache.set(text, json);
    }
  }
  return json;
}

/** `JSON.stringify(attributes)` for flat span attributes, with repeated strings cached. */
function attributesJson(attributes: Record<string, unknown>): string {
  let json = '';
  for (const key in attributes) {
    const value = attributes[key];
    let valueJson: string | undefined;
    if (typeof value === 'string') valueJson = jsonOf(value);
    else if (typeof value === 'number' && Number.isFinite(value)) valueJson = String(value);
    else if (typeof value === 'boolean') valueJson = value ? 'true' : 'false';
    // Arrays, non-finite numbers and anything odd: exactly what JSON.stringify does.
    else valueJson = JSON.stringify(value);
    if (valueJson === undefined) continue;
    json += (json ? ',' : '{') + jsonOf(key) + ':' + valueJson;
  }
  return json ? json + '}' : '{}';
}

// Spans of one batch mostly start within the same millisecond.
let lastIsoMs = Number.NaN;
let lastIso = '';
function isoTime(ms: number): string {
  const whole = Math.trunc(ms);
  if (whole !== lastIsoMs) {
    lastIso = new Date(whole).toISOString();
    lastIsoMs = whole;
  }
  return lastIso;
}

// A service has one resource: its `service` JSON is worked out once.
const serviceJson = new WeakMap<object, string>();
function serviceJsonOf(resource: ReadableSpan['resource']): string {
  let json = serviceJson.get(resource);
  if (json === undefined) {
    json = JSON.stringify(String(resource.attributes['service.name'] ?? 'unknown'));
    serviceJson.set(resource, json);
  }
  return json;
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
      let text = '';
      for (const span of spans) text += spanLine(span) + '\n';
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
