/**
 * Exit codes of the `bulwark` command, stable for scripts.
 *
 * | code | meaning |
 * | --- | --- |
 * | 0 | success |
 * | 1 | the operation failed (the message says why and what to do) |
 * | 2 | usage error: unknown command, bad flag or argument |
 * | 3 | a check ran and found a mismatch (verification failed, policy test failed) |
 * | 4 | a service or file the command needs is unavailable |
 */
export const ExitCode = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  CHECK_FAILED: 3,
  UNAVAILABLE: 4,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Thrown by a command to end with a message and a specific exit code. */
export class CliExit extends Error {
  readonly exitCode: ExitCode;
  constructor(exitCode: ExitCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.exitCode = exitCode;
    this.name = 'CliExit';
  }
}
