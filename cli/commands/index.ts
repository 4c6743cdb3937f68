import type { Command } from 'commander';
import type { CliIo } from '../main.ts';
import { registerCaCommands } from './ca.ts';
import { registerEnvoyCommands } from './envoy.ts';
import { registerLoginCommands } from './login.ts';
import { registerTokenCommands } from './token.ts';
import { registerPolicyCommands } from './policy.ts';
import { registerModelCommands } from './model.ts';
import { registerInferCommands } from './infer.ts';
import { registerAuditCommands } from './audit.ts';
import { registerUpCommands } from './up.ts';
import { registerServeCommands } from './serve.ts';

/** Attaches every area's subcommands (one file per area in this folder) to the program. */
export function registerCommands(_program: Command, _io: CliIo): void {
  // Areas register here: ca, audit, policy, model, login, token, infer, envoy, up.
  registerCaCommands(_program, _io);
  registerEnvoyCommands(_program, _io);
  registerPolicyCommands(_program, _io);
  registerLoginCommands(_program, _io);
  registerTokenCommands(_program, _io);
  registerModelCommands(_program, _io);
  registerInferCommands(_program, _io);
  registerAuditCommands(_program, _io);
  registerUpCommands(_program, _io);
  registerServeCommands(_program, _io);
}
