/**
 * Step 7: output hardening per the manifest's output policy, against membership inference
 * and extraction: optional Laplace noise on scores with a per-client privacy budget ε per UTC
 * day (noisy scores are clipped and renormalised, labels re-derived from them: post-processing
 * keeps the guarantee), top-k, rounding, and label-only answers.
 */
import type { ModelManifest } from '../bundle/manifest.ts';
import { InferenceError, invalidInput } from '../errors.ts';
import type { Tensor } from '../tensor/codec.ts';

export interface PrivacyReport {
  /** ε charged for this answer. */
  epsilon: number;
  /** ε spent today by this client on this model, including this answer. */
  spent: number;
  remaining: number;
}

export interface HardenedOutputs {
  outputs: Tensor[];
  privacy?: PrivacyReport;
}

export interface OutputHardenerOptions {
  /** Uniform random numbers in [0, 1). Default `Math.random` (inject a seeded one in tests). */
  random?: () => number;
  now?: () => number;
}

export interface OutputHardener {
  /**
   * Applies the model's output policy to `outputs` (the model's raw results) and returns the
   * tensors to send, in the order of `requested`.
   */
  harden(
    manifest: ModelManifest,
    outputs: Tensor[],
    requested: readonly string[],
    client: string,
  ): HardenedOutputs;
}

const DAY_MS = 86_400_000;

function isScore(t: Tensor): t is Tensor & { data: Float32Array | Float64Array } {
  return t.datatype === 'FP32' || t.datatype === 'FP64';
}

function rowsOf(t: Tensor): { rows: number; width: number } {
  const width = t.shape.length > 1 ? t.shape[t.shape.length - 1]! : (t.data as Float32Array).length;
  return { rows: width === 0 ? 0 : (t.data as Float32Array).length / width, width };
}

/**
 * @example
 * ```ts
 * const hardener = createOutputHardener();
 * const { outputs, privacy } = hardener.harden(manifest, results, ['label'], caller.subject);
 * ```
 */
export function createOutputHardener(options: OutputHardenerOptions = {}): OutputHardener {
  const random = options.random ?? Math.random;
  const now = options.now ?? Date.now;
  const ledger = new Map<string, { day: number; spent: number }>();

  const laplace = (scale: number) => {
    const u = random() - 0.5;
    return -scale * Math.sign(u) * Math.log(1 - 2 * Math.abs(u));
  };

  return {
    harden(manifest, raw, requested, client) {
      const policy = manifest.outputPolicy;
      const outputs = raw.map((t) => ({ ...t, data: isScore(t) ? t.data.slice() : t.data }));
      let privacy: PrivacyReport | undefined;
      if (policy.laplace) {
        const { epsilonPerQuery, sensitivity, budgetPerClient } = policy.laplace;
        const batch = Math.max(1, ...outputs.filter(isScore).map((t) => rowsOf(t).rows));
        const cost = epsilonPerQuery * batch;
        const key = `${client}\u0000${manifest.name}`;
        const day = Math.floor(now() / DAY_MS);
        if (ledger.size > 100_000) {
          // Spending of past days no longer counts: drop it.
          for (const [k, v] of ledger) if (v.day !== day) ledger.delete(k);
        }
        const entry = ledger.get(key);
        const spent = entry && entry.day === day ? entry.spent : 0;
        if (spent + cost > budgetPerClient + 1e-9) {
          throw new InferenceError(
            'ERR_INFERENCE_PRIVACY_BUDGET_EXHAUSTED',
            `privacy budget for model ${manifest.name} is exhausted (ε ${spent.toFixed(2)} of ${budgetPerClient} spent today; this request needs ${cost.toFixed(2)})`,
          );
        }
        ledger.set(key, { day, spent: spent + cost });
        privacy = { epsilon: cost, spent: spent + cost, remaining: budgetPerClient - spent - cost };
        for (const t of outputs.filter(isScore)) {
          const { rows, width } = rowsOf(t);
          for (let r = 0; r < rows; r++) {
            const row = t.data.subarray(r * width, (r + 1) * width);
            let sum = 0;
            for (let c = 0; c < width; c++) {
              row[c] = Math.min(1, Math.max(0, row[c]! + laplace(sensitivity / epsilonPerQuery)));
              sum += row[c]!;
            }
            for (let c = 0; c < width; c++) row[c] = sum > 0 ? row[c]! / sum : 1 / width;
          }
          // Labels follow the noisy scores (report-noisy-max), never the exact ones.
          for (const spec of manifest.outputs.filter((o) => o.labels?.length === width)) {
            const label = outputs.find((o) => o.name === spec.name);
            if (!label || label.datatype !== 'INT64') continue;
            const data = new BigInt64Array(rows);
            for (let r = 0; r < rows; r++) {
              const row = Array.from(t.data.subarray(r * width, (r + 1) * width));
              data[r] = BigInt(row.indexOf(Math.max(...row)));
            }
            label.data = data;
          }
        }
      }
      for (const t of outputs.filter(isScore)) {
        const { rows, width } = rowsOf(t);
        if (policy.topK !== undefined && policy.topK < width) {
          for (let r = 0; r < rows; r++) {
            const row = t.data.subarray(r * width, (r + 1) * width);
            const keep = new Set(
              Array.from(row.keys())
                .sort((a, b) => row[b]! - row[a]! || a - b)
                .slice(0, policy.topK),
            );
            for (let c = 0; c < width; c++) if (!keep.has(c)) row[c] = 0;
          }
        }
        if (policy.roundDigits !== undefined) {
          const f = 10 ** policy.roundDigits;
          for (let i = 0; i < t.data.length; i++) t.data[i] = Math.round(t.data[i]! * f) / f;
        }
      }
      const withheld = policy.labelOnly
        ? new Set(outputs.filter(isScore).map((t) => t.name))
        : new Set<string>();
      const explicit = requested.filter((n) => withheld.has(n));
      if (explicit.length > 0 && requested.every((n) => withheld.has(n))) {
        throw invalidInput(
          `output ${JSON.stringify(explicit[0])} is withheld: model ${manifest.name} answers with labels only`,
        );
      }
      const result = requested
        .filter((n) => !withheld.has(n))
        .map((n) => outputs.find((t) => t.name === n))
        .filter((t): t is Tensor => t !== undefined);
      return privacy ? { outputs: result, privacy } : { outputs: result };
    },
  };
}
