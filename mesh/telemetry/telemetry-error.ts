import { status } from '@grpc/grpc-js';
import { BulwarkError } from '../errors.ts';

/** Stable codes of {@link TelemetryError}. */
export type TelemetryErrorCode =
  'ERR_TELEMETRY_CONFIG' | 'ERR_TELEMETRY_METRICS_LISTEN' | 'ERR_TELEMETRY_SPAN_FILE';

const statuses: Record<TelemetryErrorCode, status> = {
  ERR_TELEMETRY_CONFIG: status.FAILED_PRECONDITION,
  ERR_TELEMETRY_METRICS_LISTEN: status.UNAVAILABLE,
  ERR_TELEMETRY_SPAN_FILE: status.INTERNAL,
};

/**
 * Raised when tracing, metrics or logging cannot be set up as asked, e.g. an unsupported
 * `OTEL_TRACES_EXPORTER` value or a metrics port that is already taken.
 */
export class TelemetryError extends BulwarkError<TelemetryErrorCode> {
  constructor(code: TelemetryErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, statuses[code], options);
  }
}
