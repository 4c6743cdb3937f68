import { InvalidArgumentError, type Command } from 'commander';
import type { CliIo } from '../main.ts';
import { startMesh } from '../../mesh/launcher/up.ts';
import { renderSummary } from '../../mesh/launcher/summary.ts';
import { launcherToCliExit } from './serve.ts';

function portBase(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1024 || n > 65_000) {
    throw new InvalidArgumentError('expected a port number between 1024 and 65000');
  }
  return n;
}

/**
 * `bulwark up`: the whole mesh on this machine as supervised processes, until Ctrl-C.
 * Resolves only after the mesh has stopped (on SIGINT/SIGTERM).
 */
export function registerUpCommands(program: Command, io: CliIo): void {
  program
    .command('up')
    .description(
      'Start the whole mesh on this machine: demo partner IdPs, identity broker, audit, policy, inference',
    )
    .option('--config <file>', 'bulwark.yaml to read (env BULWARK_CONFIG; default ./bulwark.yaml)')
    .option(
      '--state-dir <dir>',
      'CA, certificates, secrets, databases, models and logs (default: stateDir of bulwark.yaml, .bulwark)',
    )
    .option(
      '--port-base <n>',
      'move every listener to ports n.. (identity n, policy n+1, audit n+2, inference n+3, metrics n+10.., demo IdPs n+20..; env BULWARK_PORT_BASE)',
      portBase,
    )
    .addHelpText(
      'after',
      '\nOn first run it creates the mesh CA, every certificate (keys 0600), demo secrets and the\n' +
        'signed demo models in the state directory. Progress goes to stderr, service logs to\n' +
        '<state-dir>/logs. A crashed service is restarted with backoff; Ctrl-C stops everything.\n' +
        '\nExamples:\n  bulwark up\n  bulwark up --state-dir /tmp/mesh --port-base 21000\n',
    )
    .action(async (opts: { config?: string; stateDir?: string; portBase?: number }) => {
      const base =
        opts.portBase ??
        (process.env.BULWARK_PORT_BASE ? portBase(process.env.BULWARK_PORT_BASE) : undefined);
      const progress = (line: string) => io.err(`up: ${line}\n`);
      // Ctrl-C while starting: stop what already runs instead of leaving orphans.
      const starting = new AbortController();
      const abortStart = () => starting.abort();
      process.once('SIGINT', abortStart);
      process.once('SIGTERM', abortStart);
      let mesh;
      try {
        mesh = await startMesh({
          signal: starting.signal,
          ...(opts.config ? { configFile: opts.config } : {}),
          ...(opts.stateDir ? { stateDir: opts.stateDir } : {}),
          ...(base !== undefined ? { portBase: base } : {}),
          progress,
        });
      } catch (err) {
        throw launcherToCliExit(err);
      } finally {
        process.off('SIGINT', abortStart);
        process.off('SIGTERM', abortStart);
      }
      io.out(renderSummary(mesh));
      await new Promise<void>((resolve) => {
        let stopping = false;
        // Handlers stay installed until every child is gone: a second Ctrl-C (or the SIGINT the
        // terminal also sends to the children) must not kill the launcher half-way.
        const onSignal = (signal: NodeJS.Signals) => {
          if (stopping) {
            progress(`${signal}: still stopping, waiting for the services to exit`);
            return;
          }
          stopping = true;
          progress(`${signal}: stopping every service`);
          void mesh.stop().then(() => {
            process.off('SIGINT', onSignal);
            process.off('SIGTERM', onSignal);
            progress('stopped');
            resolve();
          });
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
      });
    });
}
