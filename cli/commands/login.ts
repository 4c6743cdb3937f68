import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import type { CliIo } from '../main.ts';
import { CliExit, ExitCode } from '../exit-codes.ts';
import { deviceLogin } from '../../identity/client/device-login.ts';
import { defaultTokenFile, writeSession } from '../../identity/client/token-file.ts';
import { IdentityError } from '../../identity/errors.ts';
import { createTlsFetch } from '../../identity/tls-fetch.ts';

// The identity service's default public URL in bulwark.yaml.
const DEFAULT_ISSUER = 'https://127.0.0.1:7440';
const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number');
  return n;
}

/** Options shared by `login` and `token`: where the broker is and which CA to trust. */
export function brokerFetch(caFile: string | undefined): typeof fetch {
  if (!caFile) return createTlsFetch();
  try {
    return createTlsFetch({ ca: readFileSync(caFile, 'utf8') });
  } catch (err) {
    throw new CliExit(ExitCode.UNAVAILABLE, `cannot read the CA file ${caFile}`, { cause: err });
  }
}

/** Identity errors become exit codes: unreachable broker 4, refusals 1. */
export function identityToCliExit(err: unknown): unknown {
  if (!(err instanceof IdentityError)) return err;
  const code =
    err.code === 'ERR_IDENTITY_UPSTREAM_UNAVAILABLE'
      ? ExitCode.UNAVAILABLE
      : err.code === 'ERR_IDENTITY_UNKNOWN_ORGANISATION'
        ? ExitCode.USAGE
        : ExitCode.FAILURE;
  return new CliExit(code, err.message, { cause: err });
}

/**
 * `bulwark login --org <org>`: signs a person in with the device flow (RFC 8628) and stores
 * the session (mode 0600) for `bulwark token`.
 */
export function registerLoginCommands(program: Command, io: CliIo): void {
  program
    .command('login')
    .description(
      'sign in through your organisation (device flow) and store a session for `bulwark token`',
    )
    .requiredOption('--org <org>', 'your organisation id, e.g. acme')
    .option(
      '--issuer <url>',
      'identity broker URL (env BULWARK_ISSUER)',
      process.env.BULWARK_ISSUER ?? DEFAULT_ISSUER,
    )
    .option(
      '--ca <file>',
      'PEM CA to trust for the broker (env BULWARK_CA_FILE)',
      process.env.BULWARK_CA_FILE,
    )
    .option('--resource <urn>', 'audience of the tokens', 'urn:bulwark:inference')
    .option('--scope <scopes>', 'space-separated scopes', 'model:infer')
    .option('--token-file <path>', 'where to store the session (env BULWARK_TOKEN_FILE)')
    .option(
      '--poll-interval <seconds>',
      'seconds between polls when the broker names none',
      positiveNumber,
      5,
    )
    .addHelpText(
      'after',
      '\nOpens no browser itself: it prints a URL and a code; open the URL on any device, sign in\nwith your organisation and confirm the code. The session file is written with mode 0600.',
    )
    .action(
      async (opts: {
        org: string;
        issuer: string;
        ca?: string;
        resource: string;
        scope: string;
        tokenFile?: string;
        pollInterval: number;
      }) => {
        const fetchFn = brokerFetch(opts.ca);
        const file = opts.tokenFile ?? defaultTokenFile();
        let frame = 0;
        let spinner: ReturnType<typeof setInterval> | undefined;
        try {
          const session = await deviceLogin({
            issuer: opts.issuer,
            org: opts.org,
            resource: opts.resource,
            scope: opts.scope,
            fetchFn,
            pollIntervalSeconds: opts.pollInterval,
            onCode: ({ verificationUri, verificationUriComplete, userCode }) => {
              io.out(
                `Open ${verificationUriComplete ?? verificationUri}\nand confirm the code: ${userCode}\n`,
              );
              spinner = setInterval(() => {
                io.err(`\r${FRAMES[frame++ % FRAMES.length]} waiting for approval…`);
              }, 120);
            },
          });
          writeSession(file, session);
          io.err('\r');
          io.out(`Signed in to ${opts.org}. Session stored in ${file} (mode 0600).\n`);
        } catch (err) {
          throw identityToCliExit(err);
        } finally {
          if (spinner) clearInterval(spinner);
        }
      },
    );
}
