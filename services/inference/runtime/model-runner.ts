/**
 * One loaded model version: an onnxruntime session built from verified bytes, guarded by a
 * per-model concurrency limit (a bounded queue; beyond it callers get UNAVAILABLE) and a
 * deadline per call (DEADLINE_EXCEEDED).
 */
import { ort, type OrtSession, type OrtTensor } from './ort.ts';
import { InferenceError } from '../errors.ts';
import type { VerifiedBundle } from '../bundle/verify.ts';

export interface RunnerOptions {
  /** Runs executing at once (default 4). */
  maxConcurrent?: number;
  /** Calls waiting for a slot before new ones are refused (default 256). */
  maxQueue?: number;
  /** onnxruntime intra-op threads per session (default 1: many small models share 2 cores). */
  intraOpThreads?: number;
}

export interface ModelRunner {
  readonly bundle: VerifiedBundle;
  /** Runs the model; `deadline` is an absolute time in ms from `now`. */
  run(
    feeds: Record<string, OrtTensor>,
    deadline: number,
    now?: () => number,
  ): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}

/**
 * Creates an onnxruntime session from a verified bundle.
 *
 * @example
 * ```ts
 * const runner = await createModelRunner(bundle, { maxConcurrent: 4 });
 * const out = await runner.run({ input: tensor }, Date.now() + 1000);
 * ```
 */
export async function createModelRunner(
  bundle: VerifiedBundle,
  options: RunnerOptions = {},
): Promise<ModelRunner> {
  const maxConcurrent = options.maxConcurrent ?? 4;
  const maxQueue = options.maxQueue ?? 256;
  let session: OrtSession;
  try {
    session = await ort.InferenceSession.create(bundle.model, {
      intraOpNumThreads: options.intraOpThreads ?? 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
  } catch (err) {
    throw new InferenceError('ERR_BUNDLE_INVALID', 'onnxruntime refused model.onnx', {
      cause: err,
    });
  }
  let active = 0;
  const waiting: (() => void)[] = [];

  const acquire = (remaining: number): Promise<void> => {
    if (active < maxConcurrent) {
      active++;
      return Promise.resolve();
    }
    if (waiting.length >= maxQueue) {
      return Promise.reject(
        new InferenceError(
          'ERR_INFERENCE_MODEL_UNAVAILABLE',
          'model is at its concurrency limit; retry later',
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const grant = () => {
        clearTimeout(timer);
        active++;
        resolve();
      };
      const timer = setTimeout(
        () => {
          const i = waiting.indexOf(grant);
          if (i >= 0) waiting.splice(i, 1);
          reject(
            new InferenceError(
              'ERR_INFERENCE_DEADLINE_EXCEEDED',
              'deadline passed while waiting for the model',
            ),
          );
        },
        Math.max(0, remaining),
      );
      waiting.push(grant);
    });
  };
  const releaseSlot = () => {
    active--;
    const next = waiting.shift();
    if (next) next();
  };

  return {
    bundle,
    async run(feeds, deadline, now = Date.now) {
      const remaining = deadline - now();
      if (remaining <= 0) {
        throw new InferenceError(
          'ERR_INFERENCE_DEADLINE_EXCEEDED',
          'deadline passed before the run',
        );
      }
      await acquire(remaining);
      try {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new InferenceError(
                  'ERR_INFERENCE_DEADLINE_EXCEEDED',
                  'model run exceeded the deadline',
                ),
              ),
            Math.max(0, deadline - now()),
          );
        });
        try {
          return await Promise.race([session.run(feeds), timeout]);
        } catch (err) {
          if (err instanceof InferenceError) throw err;
          throw new InferenceError('ERR_INFERENCE_RUN_FAILED', 'model run failed', { cause: err });
        } finally {
          clearTimeout(timer);
        }
      } finally {
        releaseSlot();
      }
    },
    release: () => session.release(),
  };
}
