import { status } from '@grpc/grpc-js';
import { BulwarkError } from '../errors.ts';

/** Stable codes of {@link LauncherError}. */
export type LauncherErrorCode =
  | 'ERR_LAUNCHER_PORT_IN_USE'
  | 'ERR_LAUNCHER_STATE'
  | 'ERR_LAUNCHER_START_FAILED'
  | 'ERR_LAUNCHER_INVALID_OPTION';

const statuses: Record<LauncherErrorCode, status> = {
  ERR_LAUNCHER_PORT_IN_USE: status.UNAVAILABLE,
  ERR_LAUNCHER_STATE: status.FAILED_PRECONDITION,
  ERR_LAUNCHER_START_FAILED: status.UNAVAILABLE,
  ERR_LAUNCHER_INVALID_OPTION: status.INVALID_ARGUMENT,
};

/** A problem starting the local mesh (`bulwark up`) or one service (`bulwark serve`). */
export class LauncherError extends BulwarkError<LauncherErrorCode> {
  constructor(code: LauncherErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, statuses[code], options);
  }
}
