import { existsSync } from 'node:fs';
import { chmod, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { Option, type Command } from 'commander';
import type { CliIo } from '../main.ts';
import { CliExit, ExitCode } from '../exit-codes.ts';
import { loadConfig } from '../../mesh/config/index.ts';
import { ModelServiceClient, type Model } from '../../gen/bulwark/model/v1/model.ts';
import {
  MANIFEST_FILE,
  SIGNATURE_FILE,
  generateSignerKey,
  loadTrustedKey,
  parseManifest,
  readBundleDir,
  signBundle,
  verifyBundleFiles,
} from '../../services/inference/index.ts';
import {
  channelCredentials,
  channelOptions,
  unary,
  type ConnectOptions,
} from '../../services/inference/client/connect.ts';

interface ConnOpts {
  address?: string;
  config?: string;
  ca?: string;
  cert?: string;
  key?: string;
  token?: string;
  server: string;
}

/** Connection options shared by the commands that call the inference service. */
export function addConnectionOptions(cmd: Command): Command {
  return cmd
    .option(
      '--address <host:port>',
      'inference service address (env BULWARK_INFERENCE_ADDRESS; default services.inference of bulwark.yaml)',
    )
    .option(
      '--ca <file>',
      'PEM file of the mesh CA (env BULWARK_CA_FILE; default <stateDir>/certs/ca.crt of bulwark.yaml)',
    )
    .option('--config <file>', 'bulwark.yaml to take the defaults from (env BULWARK_CONFIG)')
    .option('--cert <file>', 'client certificate, for certificate-bound tokens')
    .option('--key <file>', 'client private key (with --cert)')
    .option('--token <jwt>', 'access token; default env BULWARK_TOKEN (e.g. "$(bulwark token)")')
    .option(
      '--server <spiffe-id>',
      'SPIFFE ID the server must present',
      'spiffe://bulwark.local/svc/inference',
    );
}

/** The address and CA from bulwark.yaml, for what the flags and variables leave open. */
function configDefaults(file: string | undefined): { address: string; caFile: string } {
  let config;
  try {
    config = loadConfig(file ? { file } : {});
  } catch (err) {
    throw new CliExit(
      ExitCode.USAGE,
      `cannot read bulwark.yaml for the defaults: ${(err as Error).message} (pass --address and --ca)`,
      { cause: err },
    );
  }
  const self = config.services.inference;
  // A service listening on every interface is reached on loopback from this machine.
  const host = ['0.0.0.0', '::', '[::]'].includes(self.host) ? '127.0.0.1' : null;
  return {
    address: host ? `${host}:${self.port}` : self.address,
    caFile: path.join(config.stateDir, 'certs', 'ca.crt'),
  };
}

export function connection(opts: ConnOpts): ConnectOptions {
  const token = opts.token ?? process.env.BULWARK_TOKEN;
  if (!token)
    throw new CliExit(
      ExitCode.USAGE,
      'no access token: pass --token or set BULWARK_TOKEN (see `bulwark token`)',
    );
  let address = opts.address ?? process.env.BULWARK_INFERENCE_ADDRESS;
  let ca = opts.ca ?? process.env.BULWARK_CA_FILE;
  if (!address || !ca) {
    const defaults = configDefaults(opts.config);
    address ??= defaults.address;
    if (!ca) {
      if (!existsSync(defaults.caFile))
        throw new CliExit(
          ExitCode.USAGE,
          `no CA: ${defaults.caFile} does not exist (run \`bulwark up\` first, or pass --ca <file> or set BULWARK_CA_FILE)`,
        );
      ca = defaults.caFile;
    }
  }
  if (!existsSync(ca)) throw new CliExit(ExitCode.USAGE, `--ca ${ca}: no such file`);
  return {
    address,
    caFile: ca,
    ...(opts.cert ? { certFile: opts.cert } : {}),
    ...(opts.key ? { keyFile: opts.key } : {}),
    expectedServer: opts.server,
    token,
  };
}

/** gRPC failures become exit codes: unreachable → 4, refusals → 1, bad input → 2. */
export function grpcToCliExit(err: unknown): unknown {
  const e = err as Partial<ServiceError>;
  if (typeof e.code !== 'number') return err;
  const message = e.details || e.message || 'call failed';
  if (e.code === status.UNAVAILABLE || e.code === status.DEADLINE_EXCEEDED) {
    return new CliExit(
      ExitCode.UNAVAILABLE,
      `${message} (is the inference service running at the address given?)`,
      { cause: err },
    );
  }
  if (e.code === status.INVALID_ARGUMENT)
    return new CliExit(ExitCode.USAGE, message, { cause: err });
  return new CliExit(ExitCode.FAILURE, message, { cause: err });
}

function describeModel(m: Model | undefined): string {
  if (!m) return '';
  const canary = m.canaryVersion ? `, canary ${m.canaryVersion} at ${m.canaryPercent}%` : '';
  const prev = m.previousStableVersion ? `, previous ${m.previousStableVersion}` : '';
  const versions = m.versions
    .map((v) => `  ${m.name}@${v.version}  sha256:${v.bundleSha256}  signer ${v.signerKeyId}`)
    .join('\n');
  return `${m.name}: stable ${m.stableVersion}${canary}${prev}\n${versions}\n`;
}

async function withAdmin<T>(
  opts: ConnOpts,
  fn: (client: ModelServiceClient, conn: ConnectOptions) => Promise<T>,
): Promise<T> {
  const conn = connection(opts);
  const client = new ModelServiceClient(
    conn.address,
    channelCredentials(conn),
    channelOptions(conn.address),
  );
  try {
    return await fn(client, conn);
  } catch (err) {
    throw grpcToCliExit(err);
  } finally {
    client.close();
  }
}

/**
 * `bulwark model keygen|sign|verify` for publishers, and `register|list|canary|promote|rollback`
 * against a running inference service (needs a token with `model:admin`).
 */
export function registerModelCommands(program: Command, io: CliIo): void {
  const model = program.command('model').description('Sign, verify and manage model bundles');

  model
    .command('keygen')
    .description(
      'Create an Ed25519 bundle-signing key: <out>/signer.key (0600) and <out>/signer.pub',
    )
    .option('--out <dir>', 'directory to write into', '.')
    .addHelpText('after', '\nExample:\n  bulwark model keygen --out keys\n')
    .action(async (opts: { out: string }) => {
      const key = generateSignerKey();
      const priv = path.join(opts.out, 'signer.key');
      await writeFile(priv, key.privateKeyPem, { mode: 0o600, flag: 'wx' }).catch(
        (err: NodeJS.ErrnoException) => {
          throw new CliExit(
            ExitCode.FAILURE,
            err.code === 'EEXIST'
              ? `${priv} exists; refusing to overwrite a signing key`
              : `cannot write ${priv}: ${err.message}`,
          );
        },
      );
      await chmod(priv, 0o600);
      await writeFile(path.join(opts.out, 'signer.pub'), key.publicKeyPem);
      io.out(
        `signer key ${key.keyId}\n  private key  ${priv} (mode 0600)\n  public key   ${path.join(opts.out, 'signer.pub')}\n`,
      );
    });

  model
    .command('sign')
    .description(
      'Fill in the SHA-256 of every file of a bundle directory and sign its manifest.json',
    )
    .argument(
      '<bundle-dir>',
      'directory with model.onnx and a manifest.json (its "files" are recomputed)',
    )
    .requiredOption('--key <file>', 'Ed25519 private key from `bulwark model keygen`')
    .addHelpText('after', '\nExample:\n  bulwark model sign models/iris/3 --key keys/signer.key\n')
    .action(async (dir: string, opts: { key: string }) => {
      const manifest = JSON.parse(
        await readFile(path.join(dir, MANIFEST_FILE), 'utf8').catch(() => {
          throw new CliExit(ExitCode.UNAVAILABLE, `no ${MANIFEST_FILE} in ${dir}`);
        }),
      ) as Record<string, unknown>;
      const files = new Map<string, Uint8Array>();
      for (const name of await readdir(dir)) {
        if (name === MANIFEST_FILE || name === SIGNATURE_FILE) continue;
        files.set(name, await readFile(path.join(dir, name)));
      }
      const signed = signBundle(manifest, files, await readFile(opts.key, 'utf8'));
      try {
        parseManifest(JSON.parse(Buffer.from(signed.get(MANIFEST_FILE)!).toString()));
      } catch (err) {
        throw new CliExit(ExitCode.USAGE, (err as Error).message, { cause: err });
      }
      await writeFile(path.join(dir, MANIFEST_FILE), signed.get(MANIFEST_FILE)!);
      await writeFile(path.join(dir, SIGNATURE_FILE), signed.get(SIGNATURE_FILE)!);
      io.out(`signed ${dir} (${files.size} file${files.size === 1 ? '' : 's'})\n`);
    });

  model
    .command('verify')
    .description(
      'Check a bundle as the service would: signature, digests, file layout, ONNX contents',
    )
    .argument('<bundle-dir>', 'bundle directory <name>/<version>')
    .requiredOption('--trust <files...>', 'trusted signer public keys (PEM)')
    .option('--allow-domain <domains...>', 'extra ONNX operator domains to accept', [])
    .addHelpText(
      'after',
      '\nExit code 3 when the bundle fails a check.\n\nExample:\n  bulwark model verify models/iris/3 --trust keys/signer.pub\n',
    )
    .action(async (dir: string, opts: { trust: string[]; allowDomain: string[] }) => {
      const trustedKeys = await Promise.all(
        opts.trust.map(async (f) => loadTrustedKey(await readFile(f, 'utf8'))),
      );
      try {
        const bundle = verifyBundleFiles(await readBundleDir(dir), {
          trustedKeys,
          allowedOperatorDomains: opts.allowDomain,
        });
        io.out(
          `ok ${bundle.manifest.name}@${bundle.manifest.version} sha256:${bundle.bundleSha256} signed by ${bundle.signerKeyId}\n`,
        );
      } catch (err) {
        throw new CliExit(ExitCode.CHECK_FAILED, `bundle refused: ${(err as Error).message}`, {
          cause: err,
        });
      }
    });

  addConnectionOptions(
    model
      .command('register')
      .description('Upload a signed bundle to the inference service (needs model:admin)')
      .argument('<bundle-dir>', 'bundle directory')
      .option('--stable', 'make the new version stable at once'),
  ).action(async (dir: string, opts: ConnOpts & { stable?: boolean }) => {
    const files = await readBundleDir(dir).catch((err: Error) => {
      throw new CliExit(ExitCode.CHECK_FAILED, `bundle refused: ${err.message}`, { cause: err });
    });
    const res = await withAdmin(opts, (client, conn) =>
      unary<{ model?: Model }>(
        client,
        'registerModel',
        {
          files: [...files].map(([p, content]) => ({ path: p, content: Buffer.from(content) })),
          makeStable: opts.stable ?? false,
        },
        conn,
      ),
    );
    io.out(`registered\n${describeModel(res.model)}`);
  });

  addConnectionOptions(
    model.command('list').description('List registered models and their traffic split'),
  ).action(async (opts: ConnOpts) => {
    const res = await withAdmin(opts, (client, conn) =>
      unary<{ models: Model[] }>(client, 'listModels', {}, conn),
    );
    io.out(res.models.map(describeModel).join(''));
  });

  addConnectionOptions(
    model
      .command('canary')
      .description('Send a share of traffic (sticky per subject) to a canary version; 0 clears it')
      .argument('<name>')
      .argument('<version>')
      .addOption(new Option('--percent <n>', 'share of traffic, 0-100').default('10')),
  ).action(async (name: string, version: string, opts: ConnOpts & { percent: string }) => {
    const percent = Number(opts.percent);
    if (!Number.isInteger(percent) || percent < 0 || percent > 100)
      throw new CliExit(ExitCode.USAGE, '--percent must be an integer from 0 to 100');
    const res = await withAdmin(opts, (client, conn) =>
      unary<{ model?: Model }>(
        client,
        'setCanary',
        { name, canaryVersion: percent === 0 ? '' : version, percent },
        conn,
      ),
    );
    io.out(describeModel(res.model));
  });

  addConnectionOptions(
    model
      .command('promote')
      .description('Make a version (default: the canary) the stable version')
      .argument('<name>')
      .argument('[version]'),
  ).action(async (name: string, version: string | undefined, opts: ConnOpts) => {
    const res = await withAdmin(opts, (client, conn) =>
      unary<{ model?: Model }>(client, 'promoteModel', { name, version: version ?? '' }, conn),
    );
    io.out(describeModel(res.model));
  });

  addConnectionOptions(
    model
      .command('rollback')
      .description('Return all traffic to the previous stable version at once')
      .argument('<name>'),
  ).action(async (name: string, opts: ConnOpts) => {
    const res = await withAdmin(opts, (client, conn) =>
      unary<{ model?: Model }>(client, 'rollbackModel', { name }, conn),
    );
    io.out(describeModel(res.model));
  });
}
