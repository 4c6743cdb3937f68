import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { ExportResultCode, hrTimeToMilliseconds, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { attributesNeedRedaction, redactAttributes } from './redact.ts';
import { RpcSpan } from './rpc-span.ts';

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
    startTime: new Date(startMillisOf(span)).toISOString(),
    durationMs: Number(durationText(durationMicrosOf(span))),
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
  const start = startMillisOf(span);
  let line =
    `{"traceId":${idJson(ctx.traceId)},"spanId":${idJson(ctx.spanId)}` +
    `,"name":${jsonOf(span.name)},"kind":"${KINDS[span.kind]}"` +
    `,"service":${serviceJsonOf(span.resource)}` +
    `,"startTime":"${isoPrefix(start)}${isoMillis(start)}"` +
    `,"durationMs":${durationText(durationMicrosOf(span))}` +
    `,"status":{"code":"${STATUS[span.status.code]}"` +
    (span.status.message ? `,"message":${JSON.stringify(span.status.message)}}` : '}') +
    `,"attributes":${spanAttributesJson(span)}`;
  line +=
    span.events.length === 0
      ? ',"events":[]'
      : `,"events":${JSON.stringify(toSpanRecord(span).events)}`;
  if (span.parentSpanContext) {
    line += `,"parentSpanId":${idJson(span.parentSpanContext.spanId)}`;
  }
  return line + '}';
}

/** `JSON.stringify(id)`; ids are hex, so nearly always just the id in quotes. */
function idJson(id: string): string {
  for (let i = 0; i < id.length; i += 1) {
    const c = id.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7e) return JSON.stringify(id);
  }
  return `"${id}"`;
}

/**
 * The span's attributes as `JSON.stringify(redactAttributes(span.attributes))` prints them.
 * A mesh RPC span's shared and own attributes are read in place, never merged into a copy.
 */
function spanAttributesJson(span: ReadableSpan): string {
  if (!(span instanceof RpcSpan)) {
    return attributesJson(redactAttributes(span.attributes as Record<string, unknown>));
  }
  const shared = span.sharedAttributes;
  const own = span.ownAttributes;
  if (attributesNeedRedaction(shared) || (own && attributesNeedRedaction(own))) {
    return attributesJson(redactAttributes(span.attributes as Record<string, unknown>));
  }
  if (!own) return attributesJson(shared);
  let json = '';
  for (const key in shared) {
    const valueJson = attributeValueJson(Object.hasOwn(own, key) ? own[key] : shared[key]);
    if (valueJson !== undefined) json += (json ? ',' : '{') + jsonOf(key) + ':' + valueJson;
  }
  for (const key in own) {
    if (Object.hasOwn(shared, key)) continue;
    const valueJson = attributeValueJson(own[key]);
    if (valueJson !== undefined) json += (json ? ',' : '{') + jsonOf(key) + ':' + valueJson;
  }
  return json ? json + '}' : '{}';
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
    const valueJson = attributeValueJson(attributes[key]);
    if (valueJson !== undefined) json += (json ? ',' : '{') + jsonOf(key) + ':' + valueJson;
  }
  return json ? json + '}' : '{}';
}

/** An attribute value as `JSON.stringify` prints it (`undefined`: left out). */
function attributeValueJson(value: unknown): string | undefined {
  if (typeof value === 'string') return jsonOf(value);
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  // Arrays, non-finite numbers and anything odd: exactly what JSON.stringify does.
  return JSON.stringify(value);
}

/** When a span started, in milliseconds since the epoch. */
function startMillisOf(span: ReadableSpan): number {
  return span instanceof RpcSpan ? span.startMillis : hrTimeToMilliseconds(span.startTime);
}

/** How long a span ran, in whole microseconds. */
function durationMicrosOf(span: ReadableSpan): number {
  if (span instanceof RpcSpan) return Math.max(0, Math.round(span.durationMillis * 1000));
  const [seconds, nanos] = span.duration;
  return Math.max(0, Math.round(seconds * 1e6 + nanos / 1e3));
}

// `.5`, `.05`, `.005`, `.123`: the fraction of a millisecond as JSON prints it ('' for none).
const FRACTIONS = Array.from({ length: 1000 }, (_, i) =>
  i === 0 ? '' : `.${String(i).padStart(3, '0')}`.replace(/0+$/, ''),
);

/**
 * A duration in milliseconds as JSON, to the microsecond (`0.231`, `12`): a whole number of
 * microseconds prints fast, a double's shortest form does not.
 */
function durationText(micros: number): string {
  const whole = Math.trunc(micros / 1000);
  return String(whole) + FRACTIONS[micros - whole * 1000]!;
}

// Spans mostly start within the same second: its `YYYY-MM-DDTHH:MM:SS.` is kept.
let lastIsoSecond = Number.NaN;
let lastIsoPrefix = '';
const MILLIS = Array.from({ length: 1000 }, (_, i) => `${String(i).padStart(3, '0')}Z`);
function isoPrefix(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== lastIsoSecond) {
    lastIsoPrefix = new Date(second * 1000).toISOString().slice(0, 20);
    lastIsoSecond = second;
  }
  return lastIsoPrefix;
}
/** `'123Z'`: the milliseconds of an ISO 8601 time. */
function isoMillis(ms: number): string {
  const whole = Math.floor(ms);
  return MILLIS[whole - Math.floor(whole / 1000) * 1000]!;
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
