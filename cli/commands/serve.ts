import { InvalidArgumentError, Option, type Command } from 'commander';
import type { CliIo } from '../main.ts';
import { CliExit, ExitCode } from '../exit-codes.ts';
import { ConfigError } from '../../mesh/config/index.ts';
import {
  LauncherError,
  SERVE_TARGETS,
  serve,
  type ServeTarget,
} from '../../mesh/launcher/index.ts';

export function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) {
    throw new InvalidArgumentError('expected a port number 0-65535');
  }
  return n;
}

/** Configuration and launcher errors become exit codes: bad config 2, missing state 4. */
export function launcherToCliExit(err: unknown): unknown {
  if (err instanceof ConfigError) {
    return new CliExit(
      err.code === 'ERR_CONFIG_NOT_FOUND' || err.code === 'ERR_CONFIG_SECRET_FILE'
        ? ExitCode.UNAVAILABLE
        : ExitCode.USAGE,
      err.message,
      { cause: err },
    );
  }
  if (err instanceof LauncherError) {
    const code =
      err.code === 'ERR_LAUNCHER_INVALID_OPTION'
        ? ExitCode.USAGE
        : err.code === 'ERR_LAUNCHER_START_FAILED'
          ? ExitCode.FAILURE
          : ExitCode.UNAVAILABLE;
    return new CliExit(code, err.message, { cause: err });
  }
  return err;
}

/**
 * `bulwark serve <service>`: runs one service in the foreground from `bulwark.yaml` and the
 * `BULWARK_*` variables (what docker compose and Kubernetes run in each container).
 */
export function registerServeCommands(program: Command, io: CliIo): void {
  program
    .command('serve')
    .description('Run one mesh service in the foreground (containers, or one service by hand)')
    .argument('<service>', `one of ${SERVE_TARGETS.join(', ')}`)
    .argument('[org]', 'organisation of a demo-idp (same as --org)')
    .option('--config <file>', 'bulwark.yaml to read (env BULWARK_CONFIG)')
    .option('--state-dir <dir>', 'state directory (env BULWARK_STATE_DIR)')
    .option(
      '--certs <dir>',
      'certificates: ca.crt, <service>.crt/.key (env BULWARK_CERTS_DIR; default <stateDir>/certs, else /run/secrets)',
    )
    .option('--port <n>', 'listen on this port instead of the one in bulwark.yaml', port)
    .option('--org <org>', 'organisation of a demo-idp, e.g. acme')
    .option('--jwks <url>', "policy/inference: the broker's JWKS URL (env BULWARK_JWKS_URL)")
    .option(
      '--trust <files>',
      'inference: comma-separated model signer public keys (env BULWARK_MODEL_TRUST; default <stateDir>/demo-signer.pub)',
    )
    .option(
      '--password-file <file>',
      "demo-idp: the demo users' password (env BULWARK_DEMO_PASSWORD_FILE)",
    )
    .option(
      '--postgres-url-file <file>',
      "identity: keep the broker's state in PostgreSQL; the file holds the URL (env BULWARK_IDENTITY_POSTGRES_URL_FILE)",
    )
    .addOption(
      new Option(
        '--exit-with-parent',
        'stop when the parent process exits (used by bulwark up)',
      ).hideHelp(),
    )
    .addHelpText(
      'after',
      '\nEach service reads bulwark.yaml ($BULWARK_CONFIG, ./bulwark.yaml or the embedded demo mesh)\n' +
        'with BULWARK_* overrides; logs are JSON lines on stderr; SIGTERM/SIGINT stop it gracefully.\n' +
        '\nExamples:\n  bulwark serve audit\n  bulwark serve demo-idp acme\n' +
        '  BULWARK_SERVICES__POLICY__PORT=17441 bulwark serve policy --state-dir /tmp/mesh\n',
    )
    .action(
      async (
        service: string,
        orgArg: string | undefined,
        opts: {
          config?: string;
          stateDir?: string;
          certs?: string;
          port?: number;
          org?: string;
          jwks?: string;
          trust?: string;
          passwordFile?: string;
          postgresUrlFile?: string;
          exitWithParent?: boolean;
        },
      ) => {
        if (!(SERVE_TARGETS as readonly string[]).includes(service)) {
          throw new CliExit(
            ExitCode.USAGE,
            `unknown service "${service}"; expected one of ${SERVE_TARGETS.join(', ')}`,
          );
        }
        const org = opts.org ?? orgArg;
        if (service === 'demo-idp' && !org) {
          throw new CliExit(ExitCode.USAGE, 'demo-idp needs an organisation: --org <org>');
        }
        try {
          await serve(
            {
              service: service as ServeTarget,
              ...(org ? { org } : {}),
              ...(opts.config ? { configFile: opts.config } : {}),
              ...(opts.stateDir ? { stateDir: opts.stateDir } : {}),
              ...(opts.certs ? { certsDir: opts.certs } : {}),
              ...(opts.port !== undefined ? { port: opts.port } : {}),
              ...(opts.jwks ? { jwks: opts.jwks } : {}),
              ...(opts.trust ? { trust: opts.trust.split(',') } : {}),
              ...(opts.passwordFile ? { passwordFile: opts.passwordFile } : {}),
              ...(opts.postgresUrlFile ? { postgresUrlFile: opts.postgresUrlFile } : {}),
              exitWithParent: opts.exitWithParent ?? false,
            },
            (line) => io.err(`serve ${service}: ${line}\n`),
          );
        } catch (err) {
          throw launcherToCliExit(err);
        }
      },
    );
}
