import { Command, CommanderError } from 'commander';
import { CliExit, ExitCode } from './exit-codes.ts';
import { registerCommands } from './commands/index.ts';

/** Output streams of the command, injectable so tests can capture them. */
export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

const processIo: CliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/** Builds the whole `bulwark` command tree. */
export function createProgram(io: CliIo = processIo): Command {
  const program = new Command('bulwark')
    .description('Bulwark: a zero-trust serving mesh for machine-learning models')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride();
  registerCommands(program, io);
  return program;
}

/**
 * Runs the command line and resolves to the exit code (see {@link ExitCode}); never calls
 * `process.exit` itself, so it can run inside tests.
 */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const program = createProgram(io);
  try {
    await program.parseAsync(argv);
    return ExitCode.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end through here with exit code 0.
      return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    }
    if (err instanceof CliExit) {
      io.err(`bulwark: ${err.message}\n`);
      return err.exitCode;
    }
    const message = err instanceof Error ? err.message : String(err);
    io.err(`bulwark: ${message}\n`);
    return ExitCode.FAILURE;
  }
}
