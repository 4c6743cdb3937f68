/**
 * Shapiro–Francia normality statistic W' (an approximation of Shapiro–Wilk's W that needs only
 * normal quantiles): the squared correlation between the sorted sample and the expected normal
 * order statistics. Close to 1 for normal data; lower the further the sample is from normal.
 */

// Rational approximation of the standard normal quantile (P. J. Acklam), |rel. error| < 1.2e-9.
const A = [
  -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
  2.506628277459239,
];
const B = [
  -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572,
];
const C = [
  -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734,
  4.374664141464968, 2.938163982698783,
];
const D = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];

/** Standard normal quantile Φ⁻¹(p) for 0 < p < 1. */
export function normalQuantile(p: number): number {
  const [a0, a1, a2, a3, a4, a5] = A as [number, number, number, number, number, number];
  const [b0, b1, b2, b3, b4] = B as [number, number, number, number, number];
  const [c0, c1, c2, c3, c4, c5] = C as [number, number, number, number, number, number];
  const [d0, d1, d2, d3] = D as [number, number, number, number];
  const low = 0.02425;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (
      (((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) /
      ((((d0 * q + d1) * q + d2) * q + d3) * q + 1)
    );
  }
  if (p > 1 - low) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5) * q) /
    (((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1)
  );
}

const scoreCache = new Map<number, number[]>();

function blomScores(n: number): number[] {
  let m = scoreCache.get(n);
  if (!m) {
    m = Array.from({ length: n }, (_, i) => normalQuantile((i + 1 - 0.375) / (n + 0.25)));
    if (scoreCache.size > 64) scoreCache.clear();
    scoreCache.set(n, m);
  }
  return m;
}

/**
 * W' of a sample (n ≥ 5). Returns 1 for a sample with no spread (nothing to judge).
 *
 * @example
 * ```ts
 * shapiroFrancia([2.1, 1.9, 2.0, 2.2, 1.8]); // ≈ 0.99
 * ```
 */
export function shapiroFrancia(sample: readonly number[]): number {
  const n = sample.length;
  if (n < 5) throw new Error('shapiroFrancia needs at least 5 values');
  const x = [...sample].sort((a, b) => a - b);
  const m = blomScores(n);
  const mean = x.reduce((a, b) => a + b, 0) / n;
  let sxx = 0;
  let smx = 0;
  let smm = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i]! - mean;
    sxx += dx * dx;
    smx += m[i]! * x[i]!;
    smm += m[i]! * m[i]!;
  }
  if (sxx === 0) return 1;
  return (smx * smx) / (smm * sxx);
}
