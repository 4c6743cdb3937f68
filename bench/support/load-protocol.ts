/**
 * The line protocol between the mesh benchmark (`bench/mesh.ts`) and its load generator
 * (`bench/support/mesh-load.ts`, a separate process). The parent starts the child with a
 * {@link LoadPlan} (file paths only, never a secret) as its one argument; then, on stdin, one
 * JSON line per phase to run ({@link PhaseSpec}); the child answers each with one JSON line on
 * stdout ({@link LoadMessage}). End of stdin ends the child.
 */

/** A client of the identity broker the load generator takes tokens for. */
export interface LoadIdentity {
  /** Broker client id, e.g. `acme-backend` or `acme-backend-mtls`. */
  clientId: string;
  /** File holding the client secret (`client_secret_basic`). */
  secretFile?: string;
  /** Partner client certificate and key (`tls_client_auth`; the token is certificate-bound). */
  certFile?: string;
  keyFile?: string;
}

/** What the load generator needs to reach the mesh. */
export interface LoadPlan {
  /** Mesh CA certificate (PEM file). */
  caFile: string;
  /** The broker's token endpoint. */
  tokenUrl: string;
  /** Inference `host:port` (TLS). */
  inferenceAddress: string;
  identities: LoadIdentity[];
  /** Deadline of each ModelInfer call. */
  callDeadlineMs: number;
}

/** One measured phase: closed-loop workers, optionally paced to a total rate. */
export interface PhaseSpec {
  name: string;
  concurrency: number;
  /** Calls made but not recorded before the measurement starts. */
  warmupMs: number;
  durationMs: number;
  /** Total calls per second across all workers; unset = as fast as answers come back. */
  ratePerSec?: number;
}

/** What one phase measured. Latencies are of successful calls only. */
export interface PhaseResult {
  name: string;
  concurrency: number;
  ratePerSec?: number;
  seconds: number;
  /** Calls started during the measurement. */
  attempted: number;
  ok: number;
  okPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Refusals by the per-subject quota or the extraction monitor, by `<grpc code> <bulwark code>`. */
  refused: Record<string, number>;
  /** Every other failure, by `<grpc code> <bulwark code>`. */
  errors: Record<string, number>;
  /** Successful answers without an audit receipt (must stay 0: audit-before-answer). */
  okWithoutReceipt: number;
  /** `bulwark.extraction.state` of the answers (`normal` when absent). */
  extractionStates: Record<string, number>;
  /** Token refreshes done and failed during the phase. */
  tokenRefreshes: number;
  tokenRefreshFailures: number;
}

/** A line from the load generator. */
export type LoadMessage =
  | { type: 'ready'; subjects: string[] }
  | { type: 'phase'; result: PhaseResult }
  | { type: 'error'; message: string };

/** The value at percentile `p` (0-100) of ascending `sorted`; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
