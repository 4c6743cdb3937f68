import { Counter, Histogram, Registry } from 'prom-client';
import { counterChild, histogramChild } from './metric-children.ts';

const BUCKETS = [0.001, 0.01, 0.1, 1];
const LABELS = { grpc_service: 's', grpc_method: 'm', grpc_type: 'unary' };

function pair(): { fast: Registry; slow: Registry } {
  return { fast: new Registry(), slow: new Registry() };
}

describe('metric children', () => {
  it('count exactly what the public API counts, across resets and mixed use', async () => {
    const { fast, slow } = pair();
    const make = (registry: Registry) =>
      new Counter({
        name: 'calls_total',
        help: 'calls',
        labelNames: ['grpc_service', 'grpc_method', 'grpc_type'],
        registers: [registry],
      });
    const fastCounter = make(fast);
    const slowCounter = make(slow);
    const child = counterChild(fastCounter, LABELS);
    for (let i = 0; i < 5; i += 1) {
      child.inc();
      slowCounter.inc(LABELS);
    }
    // Someone else updating the same series through the public API is seen too.
    fastCounter.inc({ ...LABELS }, 2);
    slowCounter.inc(LABELS, 2);
    expect(await fast.metrics()).toBe(await slow.metrics());
    expect(await fast.metrics()).toContain(
      'calls_total{grpc_service="s",grpc_method="m",grpc_type="unary"} 7',
    );

    // A reset drops the series the child held: it must not keep counting into the old one.
    fast.resetMetrics();
    slow.resetMetrics();
    child.inc();
    slowCounter.inc(LABELS);
    expect(await fast.metrics()).toBe(await slow.metrics());
    expect(await fast.metrics()).toContain('grpc_type="unary"} 1');
  });

  it('observe exactly what the public API observes, bucket by bucket', async () => {
    const { fast, slow } = pair();
    const make = (registry: Registry) =>
      new Histogram({
        name: 'handling_seconds',
        help: 'time',
        labelNames: ['grpc_service', 'grpc_method', 'grpc_type'],
        buckets: BUCKETS,
        registers: [registry],
      });
    const fastHistogram = make(fast);
    const slowHistogram = make(slow);
    const child = histogramChild(fastHistogram, LABELS, BUCKETS);
    // Values on bucket bounds, between them, above the last one, and zero.
    const values = [0, 0.001, 0.0005, 0.01, 0.05, 0.1, 0.5, 1, 3, 0.002];
    for (const value of values) {
      child.observe(value);
      slowHistogram.observe(LABELS, value);
    }
    expect(await fast.metrics()).toBe(await slow.metrics());
    expect(await fast.metrics()).toContain(
      'handling_seconds_count{grpc_service="s",grpc_method="m",grpc_type="unary"} 10',
    );

    fastHistogram.reset();
    slowHistogram.reset();
    child.observe(0.02);
    slowHistogram.observe(LABELS, 0.02);
    expect(await fast.metrics()).toBe(await slow.metrics());
    expect(await fast.metrics()).toContain(
      'handling_seconds_count{grpc_service="s",grpc_method="m",grpc_type="unary"} 1',
    );
  });

  it('refuses values the public API refuses', () => {
    const histogram = new Histogram({
      name: 'h',
      help: 'h',
      labelNames: ['grpc_service', 'grpc_method', 'grpc_type'],
      buckets: BUCKETS,
      registers: [],
    });
    const child = histogramChild(histogram, LABELS, BUCKETS);
    child.observe(0.5);
    expect(() => child.observe(Number.NaN)).toThrow(TypeError);
  });
});
