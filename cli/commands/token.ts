import type { Command } from 'commander';
import type { CliIo } from '../main.ts';
import { CliExit, ExitCode } from '../exit-codes.ts';
import { freshSession } from '../../identity/client/device-login.ts';
import { defaultTokenFile, readSession, writeSession } from '../../identity/client/token-file.ts';
import { brokerFetch, identityToCliExit } from './login.ts';

/**
 * `bulwark token`: prints a fresh access token from the stored session (refreshing it, and
 * rotating the refresh token, when it is about to expire). For scripts:
 * `curl -H "authorization: Bearer $(bulwark token)" ...`.
 */
export function registerTokenCommands(program: Command, io: CliIo): void {
  program
    .command('token')
    .description('print a fresh access token from the session `bulwark login` stored')
    .option(
      '--ca <file>',
      'PEM CA to trust for the broker (env BULWARK_CA_FILE)',
      process.env.BULWARK_CA_FILE,
    )
    .option('--token-file <path>', 'session file (env BULWARK_TOKEN_FILE)')
    .option('--min-validity <seconds>', 'refresh when the token expires sooner than this', '30')
    .action(async (opts: { ca?: string; tokenFile?: string; minValidity: string }) => {
      const file = opts.tokenFile ?? defaultTokenFile();
      const current = readSession(file);
      if (!current) {
        throw new CliExit(
          ExitCode.UNAVAILABLE,
          `no session in ${file}; run \`bulwark login --org <org>\` first`,
        );
      }
      try {
        const session = await freshSession(current, {
          fetchFn: brokerFetch(opts.ca),
          minValiditySeconds: Number(opts.minValidity),
        });
        if (session !== current) writeSession(file, session);
        io.out(`${session.accessToken}\n`);
      } catch (err) {
        throw identityToCliExit(err);
      }
    });
}
