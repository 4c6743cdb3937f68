import { randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  diag,
  INVALID_SPAN_CONTEXT,
  isSpanContextValid,
  SamplingDecision,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type AttributeValue,
  type Context,
  type Exception,
  type HrTime,
  type Link,
  type Span,
  type SpanContext,
  type SpanKind,
  type SpanStatus,
  type TimeInput,
  type Tracer,
} from '@opentelemetry/api';
import {
  hrTimeToMilliseconds,
  isAttributeValue,
  isTracingSuppressed,
  millisToHrTime,
  sanitizeAttributes,
  timeInputToHrTime,
  type InstrumentationScope,
} from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type {
  ReadableSpan,
  Sampler,
  SpanLimits,
  SpanProcessor,
  TimedEvent,
} from '@opentelemetry/sdk-trace-base';

/** Starts one span per gRPC call (see {@link createRpcSpanStarter}). */
export type RpcSpanStarter = (
  name: string,
  kind: SpanKind,
  /** Shared by every call of a method: copied, never changed. */
  attributes: Attributes,
  parent: Context,
) => Span;

/** What the SDK tracer holds (version 2 of `@opentelemetry/sdk-trace-base`). */
interface TracerParts {
  _sampler: Sampler;
  _spanLimits: SpanLimits;
  _resource: Resource;
  _spanProcessor: SpanProcessor;
  instrumentationScope: InstrumentationScope;
}

function partsOf(tracer: Tracer): TracerParts | undefined {
  const parts = tracer as Partial<TracerParts>;
  return parts._sampler && parts._spanLimits && parts._resource && parts._spanProcessor
    ? (parts as TracerParts)
    : undefined;
}

// Shared until a span adds its first link or event (most never do); never written to.
const NO_LINKS = Object.freeze([]) as unknown as Link[];
const NO_EVENTS = Object.freeze([]) as unknown as TimedEvent[];
const UNSET: SpanStatus = Object.freeze({ code: SpanStatusCode.UNSET });

/**
 * Span starting for the gRPC interceptors, which start one or two spans per call. The SDK's
 * `tracer.startSpan` validates and copies the attributes twice, records its own span metrics,
 * and its spans keep start and end times as arrays built on every call. Here the same sampler,
 * limits, resource and span processors of the SDK tracer make a lighter span (times are kept as
 * numbers until an exporter reads them) that exporters and processors read like an SDK span.
 * A tracer that is not the SDK's gets its own `startSpan`.
 */
export function createRpcSpanStarter(tracer: Tracer): RpcSpanStarter {
  const parts = partsOf(tracer);
  if (!parts) {
    return (name, kind, attributes, parent) => tracer.startSpan(name, { kind, attributes }, parent);
  }
  const { _sampler: sampler, _spanProcessor: processor } = parts;
  return (name, kind, attributes, parent) => {
    if (isTracingSuppressed(parent)) return trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
    const parentContext = trace.getSpanContext(parent);
    const validParent =
      parentContext && isSpanContextValid(parentContext) ? parentContext : undefined;
    const traceId = validParent ? validParent.traceId : randomHex(16);
    const spanId = randomHex(8);
    const sampling = sampler.shouldSample(parent, traceId, name, kind, attributes, NO_LINKS);
    const traceState = sampling.traceState ?? validParent?.traceState;
    const spanContext: SpanContext = {
      traceId,
      spanId,
      traceFlags:
        sampling.decision === SamplingDecision.RECORD_AND_SAMPLED
          ? TraceFlags.SAMPLED
          : TraceFlags.NONE,
    };
    if (traceState) spanContext.traceState = traceState;
    if (sampling.decision === SamplingDecision.NOT_RECORD) {
      return trace.wrapSpanContext(spanContext);
    }
    const span = new RpcSpan(parts, name, kind, spanContext, validParent, attributes);
    if (sampling.attributes) span.setAttributes(sampling.attributes);
    processor.onStart(span, parent);
    return span;
  };
}

// Ids are cut from a pool of random bytes refilled a few thousand ids at a time: one flat hex
// string per id from a single native call (strings built piece by piece are slow to print).
const ID_POOL = Buffer.alloc(24 * 1024);
let poolUsed = ID_POOL.length;

/** `bytes` random bytes as lowercase hex, never all zeros (an invalid id). */
function randomHex(bytes: number): string {
  for (;;) {
    if (poolUsed + bytes > ID_POOL.length) {
      randomFillSync(ID_POOL);
      poolUsed = 0;
    }
    const start = poolUsed;
    poolUsed += bytes;
    for (let i = start; i < poolUsed; i += 1) {
      if (ID_POOL[i] !== 0) return ID_POOL.toString('hex', start, poolUsed);
    }
  }
}

// `performance.timeOrigin` is a getter that calls into the runtime; it never changes.
const TIME_ORIGIN = performance.timeOrigin;
const nowMs = () => TIME_ORIGIN + performance.now();

/**
 * A recording span, readable by span processors and exporters like an SDK span. Its attributes
 * are the method's shared ones (never written to) plus its own (the status code, set at the
 * end); `attributes` merges them when someone asks, which the JSON-lines writer never does.
 */
export class RpcSpan implements Span, ReadableSpan {
  name: string;
  readonly kind: SpanKind;
  readonly parentSpanContext: SpanContext | undefined;
  /** Attributes every call of the method shares: read, never written to. */
  readonly sharedAttributes: Attributes;
  /** Attributes set on this span (new keys, or new values of shared keys). */
  ownAttributes: Attributes | undefined;
  #merged: Attributes | undefined;
  links: Link[] = NO_LINKS;
  events: TimedEvent[] = NO_EVENTS;
  readonly resource: Resource;
  readonly instrumentationScope: InstrumentationScope;
  status: SpanStatus = UNSET;
  droppedAttributesCount = 0;
  droppedEventsCount = 0;
  droppedLinksCount = 0;
  readonly #parts: TracerParts;
  readonly #spanContext: SpanContext;
  readonly #startMs = nowMs();
  #endMs = -1;
  #attributeCount: number;
  #startTime: HrTime | undefined;
  #endTime: HrTime | undefined;

  constructor(
    parts: TracerParts,
    name: string,
    kind: SpanKind,
    spanContext: SpanContext,
    parentSpanContext: SpanContext | undefined,
    attributes: Attributes,
  ) {
    this.#parts = parts;
    this.name = name;
    this.kind = kind;
    this.#spanContext = spanContext;
    this.parentSpanContext = parentSpanContext;
    this.sharedAttributes = attributes;
    this.#attributeCount = Object.keys(attributes).length;
    this.resource = parts._resource;
    this.instrumentationScope = parts.instrumentationScope;
  }

  get attributes(): Attributes {
    const own = this.ownAttributes;
    if (!own) return this.sharedAttributes;
    return (this.#merged ??= { ...this.sharedAttributes, ...own });
  }

  /** Start, in milliseconds since the epoch. */
  get startMillis(): number {
    return this.#startMs;
  }

  /** Duration in milliseconds (`-1` while the span runs). */
  get durationMillis(): number {
    return this.#endMs < 0 ? -1 : Math.max(0, this.#endMs - this.#startMs);
  }

  get startTime(): HrTime {
    return (this.#startTime ??= millisToHrTime(this.#startMs));
  }

  get endTime(): HrTime {
    if (this.#endMs < 0) return [0, 0];
    return (this.#endTime ??= millisToHrTime(this.#endMs));
  }

  get duration(): HrTime {
    return this.#endMs < 0 ? [-1, -1] : millisToHrTime(Math.max(0, this.#endMs - this.#startMs));
  }

  get ended(): boolean {
    return this.#endMs >= 0;
  }

  spanContext(): SpanContext {
    return this.#spanContext;
  }

  isRecording(): boolean {
    return this.#endMs < 0;
  }

  setAttribute(key: string, value: AttributeValue): this {
    if (value == null || this.#endMs >= 0) return this;
    if (key.length === 0 || !isAttributeValue(value)) {
      diag.warn(`Invalid attribute ${key}`);
      return this;
    }
    const own = (this.ownAttributes ??= {});
    const isNew = !Object.hasOwn(own, key) && !Object.hasOwn(this.sharedAttributes, key);
    const limit = this.#parts._spanLimits.attributeCountLimit;
    if (isNew && limit !== undefined && this.#attributeCount >= limit) {
      this.droppedAttributesCount += 1;
      return this;
    }
    own[key] = this.#truncate(value);
    this.#merged = undefined;
    if (isNew) this.#attributeCount += 1;
    return this;
  }

  setAttributes(attributes: Attributes): this {
    for (const [key, value] of Object.entries(attributes)) {
      if (value !== undefined) this.setAttribute(key, value);
    }
    return this;
  }

  addEvent(
    name: string,
    attributesOrStartTime?: Attributes | TimeInput,
    startTime?: TimeInput,
  ): this {
    if (this.#endMs >= 0) return this;
    const limits = this.#parts._spanLimits;
    if (limits.eventCountLimit === 0) {
      this.droppedEventsCount += 1;
      return this;
    }
    if (this.events === NO_EVENTS) this.events = [];
    if (limits.eventCountLimit !== undefined && this.events.length >= limits.eventCountLimit) {
      this.events.shift();
      this.droppedEventsCount += 1;
    }
    let attributes: Attributes | undefined;
    if (isTimeInput(attributesOrStartTime)) startTime ??= attributesOrStartTime;
    else attributes = attributesOrStartTime;
    const kept: Attributes = {};
    let dropped = 0;
    for (const [key, value] of Object.entries(sanitizeAttributes(attributes))) {
      const limit = limits.attributePerEventCountLimit;
      if (limit !== undefined && Object.keys(kept).length >= limit) dropped += 1;
      else kept[key] = this.#truncate(value as AttributeValue);
    }
    this.events.push({
      name,
      attributes: kept,
      time: startTime === undefined ? millisToHrTime(nowMs()) : timeInputToHrTime(startTime),
      droppedAttributesCount: dropped,
    });
    return this;
  }

  addLink(link: Link): this {
    if (this.#endMs >= 0) return this;
    const limit = this.#parts._spanLimits.linkCountLimit;
    if (limit === 0) {
      this.droppedLinksCount += 1;
      return this;
    }
    if (this.links === NO_LINKS) this.links = [];
    if (limit !== undefined && this.links.length >= limit) {
      this.links.shift();
      this.droppedLinksCount += 1;
    }
    this.links.push(
      link.attributes
        ? { context: link.context, attributes: sanitizeAttributes(link.attributes) }
        : { context: link.context },
    );
    return this;
  }

  addLinks(links: Link[]): this {
    for (const link of links) this.addLink(link);
    return this;
  }

  setStatus(status: SpanStatus): this {
    if (this.#endMs >= 0 || status.code === SpanStatusCode.UNSET) return this;
    // OK is final (the OpenTelemetry specification).
    if (this.status.code === SpanStatusCode.OK) return this;
    this.status =
      status.code === SpanStatusCode.ERROR && typeof status.message === 'string'
        ? { code: status.code, message: status.message }
        : { code: status.code };
    return this;
  }

  updateName(name: string): this {
    if (this.#endMs < 0) this.name = name;
    return this;
  }

  end(endTime?: TimeInput): void {
    if (this.#endMs >= 0) {
      diag.error(`${this.name}: end() called on an ended span`);
      return;
    }
    this.#endMs =
      endTime === undefined ? nowMs() : hrTimeToMilliseconds(timeInputToHrTime(endTime));
    if (this.#endMs < this.#startMs) this.#endMs = this.#startMs;
    const processor = this.#parts._spanProcessor;
    processor.onEnding?.(this);
    processor.onEnd(this);
  }

  recordException(exception: Exception, time?: TimeInput): void {
    const attributes: Attributes = {};
    if (typeof exception === 'string') {
      attributes['exception.message'] = exception;
    } else if (exception) {
      if (exception.code) attributes['exception.type'] = String(exception.code);
      else if (exception.name) attributes['exception.type'] = exception.name;
      if (exception.message) attributes['exception.message'] = exception.message;
      if (exception.stack) attributes['exception.stacktrace'] = exception.stack;
    }
    if (attributes['exception.type'] || attributes['exception.message']) {
      this.addEvent('exception', attributes, time);
    }
  }

  #truncate(value: AttributeValue): AttributeValue {
    const limit = this.#parts._spanLimits.attributeValueLengthLimit;
    if (limit === undefined || limit <= 0 || !Number.isFinite(limit)) return value;
    if (typeof value === 'string') return value.slice(0, limit);
    if (Array.isArray(value)) {
      return value.map((item) => (typeof item === 'string' ? item.slice(0, limit) : item)) as
        string[] | number[] | boolean[];
    }
    return value;
  }
}

function isTimeInput(value: unknown): value is TimeInput {
  return (
    typeof value === 'number' ||
    value instanceof Date ||
    (Array.isArray(value) && value.length === 2 && typeof value[0] === 'number')
  );
}
