import { errorCode } from '../../../mesh/errors.ts';
import { irisDataset } from '../demo/datasets.ts';
import { createRng } from '../demo/train.ts';
import { createExtractionMonitor, type ExtractionTransition } from './extraction-monitor.ts';
import { normalQuantile, shapiroFrancia } from './normality.ts';

const rng = createRng(11);
const gauss = () => Math.sqrt(-2 * Math.log(rng() + 1e-12)) * Math.cos(2 * Math.PI * rng());
const data = irisDataset();
const xs = [...data.train.xs, ...data.test.xs];
const ys = [...data.train.ys, ...data.test.ys];

/** A normal client: real flowers, measured again with a little noise. */
function benignQuery(): { row: number[]; label: number } {
  const k = Math.floor(rng() * xs.length);
  return {
    row: xs[k]!.map((v) => Math.min(30, Math.max(0, v + gauss() * 0.1)) / 30),
    label: ys[k]!,
  };
}

/** Synthetic probing: line searches between random points, 20 small steps each. */
function* probingQueries(): Generator<{ row: number[]; label: number }> {
  for (;;) {
    const p = [rng(), rng(), rng(), rng()].map((v) => (v * 8) / 30);
    const q = [rng(), rng(), rng(), rng()].map((v) => (v * 8) / 30);
    for (let s = 0; s < 20; s++)
      yield { row: p.map((v, j) => v + ((q[j]! - v) * s) / 20), label: Math.floor(s / 7) };
  }
}

test('normal quantiles and the statistic behave', () => {
  expect(normalQuantile(0.975)).toBeCloseTo(1.959964, 5);
  expect(normalQuantile(0.01)).toBeCloseTo(-2.326348, 5);
  const normal = Array.from({ length: 500 }, () => gauss());
  expect(shapiroFrancia(normal)).toBeGreaterThan(0.98);
  const bimodal = Array.from({ length: 500 }, (_, i) => (i % 2 ? 10 : 0) + rng() * 0.01);
  expect(shapiroFrancia(bimodal)).toBeLessThan(0.8);
});

test('a probing stream is flagged, then throttled, then blocked, while a normal client beside it is not', () => {
  let t = 0;
  const monitor = createExtractionMonitor({ now: () => t, throttleAfter: 10, blockAfter: 14 });
  const transitions: ExtractionTransition[] = [];
  const probe = probingQueries();
  let throttledRefusals = 0;
  let blockedRefusals = 0;
  for (let i = 0; i < 3000; i++) {
    t += 10; // 100 requests per second from each client
    const b = benignQuery();
    monitor.admit('acme/normal', 'iris');
    expect(monitor.observe('acme/normal', 'iris', [b.row], [b.label]).state).toBe('normal');
    try {
      monitor.admit('evil/prober', 'iris');
    } catch (err) {
      if (errorCode(err) === 'ERR_INFERENCE_EXTRACTION_BLOCKED') blockedRefusals++;
      else if (errorCode(err) === 'ERR_INFERENCE_QUOTA_EXCEEDED') throttledRefusals++;
      else throw err;
      // A refused probe is not answered; the attacker keeps probing anyway in the monitor's eyes
      // only when answered, so record nothing here.
      continue;
    }
    const a = probe.next().value!;
    const verdict = monitor.observe('evil/prober', 'iris', [a.row], [a.label]);
    if (verdict.transition) transitions.push(verdict.transition);
  }
  expect(transitions.map((x) => `${x.from}->${x.to}`)).toEqual([
    'normal->flagged',
    'flagged->throttled',
    'throttled->blocked',
  ]);
  expect(transitions[0]!.statistic).toBeLessThan(0.95);
  expect(throttledRefusals).toBeGreaterThan(100);
  expect(blockedRefusals).toBeGreaterThan(0);
  expect(monitor.state('acme/normal', 'iris')).toBe('normal');
  expect(monitor.state('evil/prober', 'iris')).toBe('blocked');
});

test('exact repeats do not count as probing', () => {
  const monitor = createExtractionMonitor();
  const row = [0.2, 0.1, 0.05, 0.01];
  for (let i = 0; i < 500; i++)
    expect(monitor.observe('c', 'iris', [row], [0]).state).toBe('normal');
});

test('memory stays bounded: idle normal clients are forgotten, flagged ones are kept', () => {
  const monitor = createExtractionMonitor({ maxTracks: 3, minSamples: 10, testEvery: 1 });
  const probe = probingQueries();
  for (let i = 0; i < 200; i++) {
    const a = probe.next().value!;
    monitor.observe('evil', 'iris', [a.row], [a.label]);
  }
  expect(monitor.state('evil', 'iris')).not.toBe('normal');
  for (let c = 0; c < 10; c++) monitor.observe(`client-${c}`, 'iris', [[0.1, 0.2, 0.3, 0.4]], [0]);
  expect(monitor.state('evil', 'iris')).not.toBe('normal');
});
