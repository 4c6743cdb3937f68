import { status } from '@grpc/grpc-js';
import { BulwarkError } from '../errors.ts';

/** Stable codes of {@link ConfigError}. */
export type ConfigErrorCode =
  | 'ERR_CONFIG_NOT_FOUND'
  | 'ERR_CONFIG_SYNTAX'
  | 'ERR_CONFIG_INVALID'
  | 'ERR_CONFIG_ENV'
  | 'ERR_CONFIG_SECRET_FILE';

const statuses: Record<ConfigErrorCode, status> = {
  ERR_CONFIG_NOT_FOUND: status.FAILED_PRECONDITION,
  ERR_CONFIG_SYNTAX: status.FAILED_PRECONDITION,
  ERR_CONFIG_INVALID: status.FAILED_PRECONDITION,
  ERR_CONFIG_ENV: status.FAILED_PRECONDITION,
  ERR_CONFIG_SECRET_FILE: status.FAILED_PRECONDITION,
};

/**
 * A configuration problem. `issues` lists every problem found, one line each, naming the key
 * path (and the `BULWARK_*` variable when the value came from one) and the expected form:
 * `services.audit.port: expected an integer 0-65535, got "abc"`. No message ever contains a
 * secret's value.
 */
export class ConfigError extends BulwarkError<ConfigErrorCode> {
  readonly issues: readonly string[];

  constructor(
    code: ConfigErrorCode,
    message: string,
    issues: readonly string[] = [],
    options?: ErrorOptions,
  ) {
    super(
      code,
      issues.length ? `${message}\n  ${issues.join('\n  ')}` : message,
      statuses[code],
      options,
    );
    this.issues = issues;
  }
}
