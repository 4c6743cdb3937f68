import { isIP } from 'node:net';
import { InvalidArgumentError, type Command } from 'commander';
import type { CliIo } from '../main.ts';
import { CliExit, ExitCode } from '../exit-codes.ts';
import {
  CaError,
  DEFAULT_TRUST_DOMAIN,
  createMeshCa,
  partnerFiles,
  readCaFiles,
  serviceFiles,
  writeCaFiles,
  writeIssuedFiles,
  type IssuedCertificate,
} from '../../mesh/ca/index.ts';

const DEFAULT_DIR = 'certs';

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number');
  return n;
}

// Names every certificate keeps, so probes and clients inside the container (loopback) still
// pass ordinary hostname checks; --dns and --ip add to them.
const LOOPBACK_DNS = ['localhost'];
const LOOPBACK_IPS = ['127.0.0.1', '::1'];

// RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens. No wildcards:
// a mesh certificate names exactly the hosts its one workload answers for.
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Parses one `--dns` value (repeatable): a lower-cased RFC 1123 host name. */
export function dnsName(value: string, previous: string[] = []): string[] {
  const name = value.trim().toLowerCase().replace(/\.$/, '');
  // An all-digit last label is never a host name (RFC 3696 2), only an IP address or a typo of one.
  if (isIP(name) || /(^|\.)\d+$/.test(name)) {
    throw new InvalidArgumentError(`"${value}" is an IP address: use --ip`);
  }
  if (name.includes('*')) {
    throw new InvalidArgumentError(`"${value}": wildcard names are not issued; list each name`);
  }
  if (!name || name.length > 253 || !name.split('.').every((label) => LABEL.test(label))) {
    throw new InvalidArgumentError(
      `"${value}" is not a DNS name (letters, digits, "-" and ".", e.g. identity.bulwark.svc)`,
    );
  }
  return previous.includes(name) ? previous : [...previous, name];
}

/** Parses one `--ip` value (repeatable): an IPv4 or IPv6 address. */
export function ipAddress(value: string, previous: string[] = []): string[] {
  const raw = value.trim().replace(/^\[|\]$/g, '');
  const version = raw.includes('%') ? 0 : isIP(raw); // a zone (fe80::1%eth0) is no SAN
  if (!version) {
    throw new InvalidArgumentError(`"${value}" is not an IPv4 or IPv6 address`);
  }
  // IPv6 in the URL standard's form: hex groups only (::ffff:10.0.0.1 -> ::ffff:a00:1), which
  // the certificate encoder takes as written.
  const ip = version === 6 ? new URL(`http://[${raw}]`).hostname.slice(1, -1) : raw;
  return previous.includes(ip) ? previous : [...previous, ip];
}

const union = (base: string[], extra: string[] | undefined) => [
  ...new Set([...base, ...(extra ?? [])]),
];

// CA errors become exit codes scripts can rely on: bad input is a usage error (2), a missing
// CA is "unavailable" (4), an existing one a plain failure (1).
function toCliExit(err: unknown): unknown {
  if (!(err instanceof CaError)) return err;
  switch (err.code) {
    case 'ERR_CA_INVALID_NAME':
    case 'ERR_CA_INVALID_TRUST_DOMAIN':
    case 'ERR_CA_INVALID_OPTION':
      return new CliExit(ExitCode.USAGE, err.message, { cause: err });
    case 'ERR_CA_FILE_UNREADABLE':
      return new CliExit(
        ExitCode.UNAVAILABLE,
        `${err.message}; create one with "bulwark ca init" or pass --dir`,
        { cause: err },
      );
    case 'ERR_CA_FILE_EXISTS':
      return new CliExit(ExitCode.FAILURE, `${err.message}; pass --force to replace it`, {
        cause: err,
      });
    default:
      return new CliExit(ExitCode.FAILURE, err.message, { cause: err });
  }
}

function describe(
  issued: IssuedCertificate,
  certFile: string,
  keyFile: string,
  hosts: string[],
): string {
  return [
    `issued ${issued.spiffeId}`,
    ...(hosts.length ? [`  host names   ${hosts.join(', ')}`] : []),
    `  certificate  ${certFile}`,
    `  private key  ${keyFile} (mode 0600)`,
    `  valid until  ${issued.notAfter.toISOString()}`,
    '',
  ].join('\n');
}

/**
 * `bulwark ca init` and `bulwark ca issue`: create the mesh CA and issue workload (service)
 * and partner client certificates as PEM files.
 */
export function registerCaCommands(program: Command, io: CliIo): void {
  const ca = program
    .command('ca')
    .description('Manage the mesh certificate authority and workload certificates');

  ca.command('init')
    .description('Create a new mesh CA (ECDSA P-256): writes ca.crt and ca.key (0600)')
    .option('--dir <dir>', 'directory for the CA and certificates', DEFAULT_DIR)
    .option('--trust-domain <domain>', 'SPIFFE trust domain of the mesh', DEFAULT_TRUST_DOMAIN)
    .option(
      '--force',
      'replace an existing CA in the directory (all issued certificates stop working)',
    )
    .addHelpText(
      'after',
      '\nExample:\n  bulwark ca init --dir certs --trust-domain bulwark.local\n',
    )
    .action(async (opts: { dir: string; trustDomain: string; force?: boolean }) => {
      try {
        const authority = await createMeshCa({ trustDomain: opts.trustDomain });
        const files = await writeCaFiles(opts.dir, authority, { overwrite: opts.force ?? false });
        io.out(
          `created mesh CA for spiffe://${authority.trustDomain}\n` +
            `  trust bundle ${files.certFile}\n  private key  ${files.keyFile} (mode 0600)\n`,
        );
      } catch (err) {
        throw toCliExit(err);
      }
    });

  ca.command('issue')
    .description(
      'Issue an X.509-SVID: a service certificate (spiffe://<domain>/svc/<name>) or, with ' +
        '--client --org, a partner client certificate (spiffe://<domain>/partner/<org>/<name>)',
    )
    .argument(
      '<name>',
      'service name (identity, policy, audit, inference, gateway, ...) or client name',
    )
    .option('--dir <dir>', 'directory holding the CA (from "bulwark ca init")', DEFAULT_DIR)
    .option('--client', 'issue a partner client certificate (clientAuth only) instead')
    .option('--org <org>', 'partner organisation of a --client certificate')
    .option('--days <n>', 'lifetime in days (default: 1)', positiveNumber)
    .option(
      '--dns <name>',
      'extra DNS name for HTTPS host checks, e.g. identity or identity.bulwark.svc (repeatable)',
      dnsName,
    )
    .option('--ip <addr>', 'extra IP address for HTTPS host checks (repeatable)', ipAddress)
    .addHelpText(
      'after',
      '\nFiles: <dir>/<name>.crt and <name>.key for services,\n' +
        '       <dir>/partners/<org>/<name>.crt and .key for partner clients.\n' +
        '\nService certificates always carry localhost, 127.0.0.1 and ::1; --dns and --ip add\n' +
        'the names other containers use to reach the service (mesh gRPC clients check the\n' +
        'SPIFFE ID instead; plain HTTPS clients, such as JWKS fetches, check these).\n' +
        '\nExamples:\n  bulwark ca issue audit\n' +
        '  bulwark ca issue identity --dns identity --days 30          # docker compose\n' +
        '  bulwark ca issue identity --dns identity --dns identity.bulwark.svc   # Kubernetes\n' +
        '  bulwark ca issue scorer --client --org acme --days 7\n',
    )
    .action(
      async (
        name: string,
        opts: {
          dir: string;
          client?: boolean;
          org?: string;
          days?: number;
          dns?: string[];
          ip?: string[];
        },
      ) => {
        if (opts.client && !opts.org) {
          throw new CliExit(
            ExitCode.USAGE,
            '--client needs --org <org> (the partner organisation)',
          );
        }
        if (!opts.client && opts.org) {
          throw new CliExit(ExitCode.USAGE, '--org only applies to --client certificates');
        }
        if (opts.client && (opts.dns || opts.ip)) {
          // Partner client certificates authenticate a caller; they never serve HTTPS.
          throw new CliExit(ExitCode.USAGE, '--dns and --ip only apply to service certificates');
        }
        const hosts = opts.client
          ? { dnsNames: [], ipAddresses: [] }
          : { dnsNames: union(LOOPBACK_DNS, opts.dns), ipAddresses: union(LOOPBACK_IPS, opts.ip) };
        try {
          const authority = await readCaFiles(opts.dir);
          const options = {
            ...(opts.days ? { lifetimeHours: opts.days * 24 } : {}),
            ...(opts.client ? {} : hosts),
          };
          const files =
            opts.client && opts.org
              ? partnerFiles(opts.dir, opts.org, name)
              : serviceFiles(opts.dir, name);
          const issued =
            opts.client && opts.org
              ? await authority.issuePartner(opts.org, name, options)
              : await authority.issueService(name, options);
          await writeIssuedFiles(files, issued);
          io.out(
            describe(issued, files.certFile, files.keyFile, [
              ...hosts.dnsNames,
              ...hosts.ipAddresses,
            ]),
          );
        } catch (err) {
          throw toCliExit(err);
        }
      },
    );
}
