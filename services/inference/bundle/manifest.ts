/**
 * The signed manifest of a model bundle (`manifest.json`). It names the model, lists the
 * SHA-256 of every other file, describes the input/output tensors (dtype, shape, allowed
 * value ranges) and carries the risk tier and the output policy the service enforces.
 */
import { z } from 'zod';
import { DATATYPES } from '../tensor/datatypes.ts';

export const MANIFEST_FILE = 'manifest.json';
export const SIGNATURE_FILE = 'manifest.sig';
export const MODEL_FILE = 'model.onnx';

/** A name that is safe as a single path segment: no separators, no `..`, no leading dot. */
export const SAFE_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const segment = z
  .string()
  .regex(SAFE_SEGMENT, 'must be 1-64 characters [A-Za-z0-9._-], not starting with a dot')
  .refine((s) => !s.includes('..'), 'must not contain ".."');

const tensorSchema = z.object({
  name: z.string().min(1).max(128),
  datatype: z.enum(DATATYPES),
  /** -1 marks the batch dimension. */
  shape: z.array(z.number().int().min(-1)).min(1).max(8),
  /** Inclusive bounds on every element (numeric inputs only). */
  range: z.object({ min: z.number(), max: z.number() }).optional(),
  /** Per-feature bounds along the last dimension, overriding `range`. */
  featureRanges: z.array(z.object({ min: z.number(), max: z.number() })).optional(),
  /** Whether NaN and ±Inf are accepted (never by default). */
  allowNonFinite: z.boolean().default(false),
  /** Class names for classifier outputs, used by label-only answers. */
  labels: z.array(z.string()).optional(),
});

export const outputPolicySchema = z.object({
  /** Keep only the k largest probabilities per row (others become 0). */
  topK: z.number().int().min(1).optional(),
  /** Round floating-point outputs to this many decimal places. */
  roundDigits: z.number().int().min(0).max(8).optional(),
  /** Return only the label outputs, never probabilities. */
  labelOnly: z.boolean().default(false),
  /** Laplace noise on probabilities, with a per-client ε budget per day. */
  laplace: z
    .object({
      epsilonPerQuery: z.number().positive(),
      sensitivity: z.number().positive().default(1),
      budgetPerClient: z.number().positive(),
    })
    .optional(),
});

export const manifestSchema = z.object({
  schema: z.literal('bulwark.model-manifest/v1'),
  name: segment,
  version: segment,
  description: z.string().max(1000).default(''),
  riskTier: z.enum(['low', 'medium', 'high']),
  /** Relative path → lowercase hex SHA-256 of every file besides the manifest and signature. */
  files: z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/)),
  inputs: z.array(tensorSchema).min(1),
  outputs: z.array(tensorSchema).min(1),
  maxBatch: z.number().int().min(1).default(64),
  outputPolicy: outputPolicySchema.default({ labelOnly: false }),
});

export type ModelManifest = z.infer<typeof manifestSchema>;
export type ManifestInput = z.input<typeof manifestSchema>;
export type TensorSpec = z.infer<typeof tensorSchema>;
export type OutputPolicy = z.infer<typeof outputPolicySchema>;
export type RiskTier = ModelManifest['riskTier'];

/** Parses a manifest, reporting the first bad key. */
export function parseManifest(json: unknown): ModelManifest {
  const result = manifestSchema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.join('.') || '(root)';
    throw new Error(`manifest.${where}: ${issue?.message ?? 'invalid'}`);
  }
  return result.data;
}
