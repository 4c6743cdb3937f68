import type { Command } from 'commander';
import type { CliIo } from '../main.ts';

/** Attaches every area's subcommands (one file per area in this folder) to the program. */
export function registerCommands(_program: Command, _io: CliIo): void {
  // Areas register here: ca, audit, policy, model, login, token, infer, envoy, up.
}
