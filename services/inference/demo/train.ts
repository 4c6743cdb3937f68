/**
 * Multinomial logistic regression trained by full-batch gradient descent with L2 decay:
 * small, deterministic and exact enough for the demo models. Features are standardised
 * during training and the scaling is folded back into the weights, so the exported graph is a
 * single MatMul + Add + Softmax on raw features.
 */

/** Weights `[features][classes]` and bias `[classes]` applying to raw (unscaled) features. */
export interface LinearModel {
  weights: number[][];
  bias: number[];
  classes: number;
  features: number;
}

export interface TrainOptions {
  classes: number;
  epochs?: number;
  learningRate?: number;
  l2?: number;
}

/** Deterministic PRNG (mulberry32) so synthetic data and shuffles repeat exactly. */
export function createRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Softmax of one row of logits. */
export function softmax(logits: number[]): number[] {
  const max = Math.max(...logits);
  const exps = logits.map((v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((v) => v / sum);
}

/** Class probabilities for one sample. */
export function predictProba(model: LinearModel, x: number[]): number[] {
  const logits = model.bias.map((b, c) =>
    x.reduce((acc, v, f) => acc + v * (model.weights[f]?.[c] ?? 0), b),
  );
  return softmax(logits);
}

/** Index of the most probable class. */
export function predictLabel(model: LinearModel, x: number[]): number {
  const p = predictProba(model, x);
  return p.indexOf(Math.max(...p));
}

/** Fraction of samples whose predicted label matches. */
export function accuracy(model: LinearModel, xs: number[][], ys: number[]): number {
  let ok = 0;
  xs.forEach((x, i) => {
    if (predictLabel(model, x) === ys[i]) ok++;
  });
  return ok / xs.length;
}

/**
 * Trains the model.
 *
 * @example
 * ```ts
 * const model = trainLogisticRegression(xs, ys, { classes: 3 });
 * ```
 */
export function trainLogisticRegression(
  xs: number[][],
  ys: number[],
  options: TrainOptions,
): LinearModel {
  const { classes, epochs = 600, learningRate = 0.5, l2 = 1e-4 } = options;
  const n = xs.length;
  const features = xs[0]?.length ?? 0;
  const mean = Array.from({ length: features }, (_, f) => xs.reduce((a, x) => a + x[f]!, 0) / n);
  const std = Array.from({ length: features }, (_, f) => {
    const v = xs.reduce((a, x) => a + (x[f]! - mean[f]!) ** 2, 0) / n;
    return Math.sqrt(v) || 1;
  });
  const zs = xs.map((x) => x.map((v, f) => (v - mean[f]!) / std[f]!));
  const w = Array.from({ length: features }, () => new Array<number>(classes).fill(0));
  const b = new Array<number>(classes).fill(0);
  for (let epoch = 0; epoch < epochs; epoch++) {
    const gw = Array.from({ length: features }, () => new Array<number>(classes).fill(0));
    const gb = new Array<number>(classes).fill(0);
    zs.forEach((z, i) => {
      const p = predictProba({ weights: w, bias: b, classes, features }, z);
      for (let c = 0; c < classes; c++) {
        const err = p[c]! - (ys[i] === c ? 1 : 0);
        gb[c]! += err;
        for (let f = 0; f < features; f++) gw[f]![c]! += err * z[f]!;
      }
    });
    for (let c = 0; c < classes; c++) {
      b[c]! -= (learningRate * gb[c]!) / n;
      for (let f = 0; f < features; f++) {
        w[f]![c]! -= learningRate * (gw[f]![c]! / n + l2 * w[f]![c]!);
      }
    }
  }
  // Fold standardisation in: w·(x-μ)/σ + b = (w/σ)·x + (b - Σ w μ/σ).
  const weights = w.map((row, f) => row.map((v) => v / std[f]!));
  const bias = b.map(
    (v, c) => v - w.reduce((acc, row, f) => acc + (row[c]! * mean[f]!) / std[f]!, 0),
  );
  return { weights, bias, classes, features };
}
