import { status } from '@grpc/grpc-js';
import { BulwarkError } from '../errors.ts';

/** Stable codes of the Envoy config tooling. */
export type EnvoyErrorCode =
  'ERR_ENVOY_PROTOS_UNAVAILABLE' | 'ERR_ENVOY_CONFIG_UNREADABLE' | 'ERR_ENVOY_RENDER_OPTIONS';

const statuses: Record<EnvoyErrorCode, status> = {
  ERR_ENVOY_PROTOS_UNAVAILABLE: status.UNAVAILABLE,
  ERR_ENVOY_CONFIG_UNREADABLE: status.INVALID_ARGUMENT,
  ERR_ENVOY_RENDER_OPTIONS: status.INVALID_ARGUMENT,
};

/** The one error class of `mesh/envoy`: render options rejected, protos or config unreadable. */
export class EnvoyError extends BulwarkError<EnvoyErrorCode> {
  constructor(code: EnvoyErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, statuses[code], options);
  }
}
