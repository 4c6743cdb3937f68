/**
 * `bulwark audit tail|proof|verify|export`: read the audit log straight from its database
 * (SQLite file or PostgreSQL) or from an export, offline, without the service running.
 */
import { existsSync, readFileSync, createWriteStream } from 'node:fs';
import type { Command } from 'commander';
import { loadConfig } from '../../mesh/config/index.ts';
import { CliExit, ExitCode } from '../exit-codes.ts';
import type { CliIo } from '../main.ts';
import { readExport, exportLog } from '../../services/audit/export.ts';
import { hashLeaf, inclusionRanges, verifyInclusion } from '../../services/audit/merkle.ts';
import { openCheckpoint, parseVerifierKey, type NoteVerifier } from '../../services/audit/note.ts';
import { openPostgresStore } from '../../services/audit/store/postgres-store.ts';
import { openSqliteStore } from '../../services/audit/store/sqlite-store.ts';
import type { AuditStore, StoredCheckpoint } from '../../services/audit/store/types.ts';
import { hashRange, nodeKey, nodesForRanges } from '../../services/audit/tree-nodes.ts';
import { verifyLeaves, verifyStore, type VerifyResult } from '../../services/audit/verify.ts';

interface SourceOptions {
  sqlite?: string;
  postgres?: string;
  config?: string;
  key?: string;
}

function withSource(cmd: Command): Command {
  return cmd
    .option('--sqlite <file>', 'audit SQLite database (default: storage in bulwark.yaml)')
    .option('--postgres <url>', 'audit PostgreSQL database URL')
    .option('--config <file>', 'bulwark.yaml to read the storage from')
    .option(
      '--key <vkey|file>',
      "the log's verifier key (name+id+key), or a file holding it; default: the key recorded in the database",
    );
}

async function openStore(opts: SourceOptions): Promise<AuditStore> {
  try {
    if (opts.sqlite) {
      if (!existsSync(opts.sqlite)) throw new Error(`${opts.sqlite} does not exist`);
      return openSqliteStore({ path: opts.sqlite, readOnly: true });
    }
    if (opts.postgres) return await openPostgresStore({ connectionString: opts.postgres });
    const config = loadConfig(opts.config ? { file: opts.config } : {});
    if (config.storage.kind === 'postgres') {
      return await openPostgresStore({ connectionString: config.storage.url });
    }
    if (!existsSync(config.storage.path)) throw new Error(`${config.storage.path} does not exist`);
    return openSqliteStore({ path: config.storage.path, readOnly: true });
  } catch (err) {
    throw new CliExit(
      ExitCode.UNAVAILABLE,
      `cannot open the audit database: ${(err as Error).message} (pass --sqlite FILE or --postgres URL)`,
      { cause: err },
    );
  }
}

function readKey(value: string): string {
  return existsSync(value) ? readFileSync(value, 'utf8').trim() : value.trim();
}

async function verifierFor(
  opts: SourceOptions,
  io: CliIo,
  fallback: string | undefined,
): Promise<NoteVerifier> {
  const text = opts.key ? readKey(opts.key) : fallback;
  if (!text) throw new CliExit(ExitCode.USAGE, 'no verifier key: pass --key');
  if (!opts.key) {
    io.err('note: trusting the verifier key stored with the log; pass --key to pin it\n');
  }
  try {
    return parseVerifierKey(text);
  } catch (err) {
    throw new CliExit(ExitCode.USAGE, `bad verifier key: ${(err as Error).message}`);
  }
}

async function withStore<T>(
  opts: SourceOptions,
  fn: (store: AuditStore) => Promise<T>,
): Promise<T> {
  const store = await openStore(opts);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

function report(io: CliIo, result: VerifyResult): void {
  const root = Buffer.from(result.root).toString('base64');
  if (result.ok) {
    io.out(`ok: ${result.treeSize} leaves verified, root ${root}\n`);
    return;
  }
  const leaf = result.firstBadLeaf !== undefined ? ` (first bad leaf: ${result.firstBadLeaf})` : '';
  throw new CliExit(ExitCode.CHECK_FAILED, `verification failed: ${result.reason}${leaf}`);
}

function progress(io: CliIo) {
  let last = 0;
  return (done: number, total?: number) => {
    const now = Date.now();
    if (now - last > 1000) {
      last = now;
      io.err(`verified ${done}${total ? `/${total}` : ''} leaves\n`);
    }
  };
}

async function latestCheckpoint(store: AuditStore): Promise<StoredCheckpoint> {
  const cp = await store.latestCheckpoint();
  if (!cp) throw new CliExit(ExitCode.FAILURE, 'the log has no signed checkpoint yet');
  return cp;
}

/** Registers `bulwark audit ...`. */
export function registerAuditCommands(program: Command, io: CliIo): void {
  const audit = program
    .command('audit')
    .description('Read, prove and verify the tamper-evident audit log (offline)');

  withSource(audit.command('verify'))
    .description(
      'Re-hash the whole log and check it against every signed checkpoint; names the first bad leaf (exit 3)',
    )
    .option('--checkpoint <file>', 'a signed checkpoint you trust (the log must extend it)')
    .option('--export <file>', 'verify a JSON Lines export instead of a database')
    .option(
      '--workers <n>',
      'SQLite: worker threads hashing beside this one (default: 1 on two or more cores for logs of 200,000 leaves or more; 0: this thread only)',
    )
    .action(
      async (opts: SourceOptions & { checkpoint?: string; export?: string; workers?: string }) => {
        const workers = opts.workers === undefined ? undefined : Number(opts.workers);
        if (workers !== undefined && !(Number.isInteger(workers) && workers >= 0 && workers <= 16))
          throw new CliExit(ExitCode.USAGE, '--workers must be a whole number from 0 to 16');
        const trusted = opts.checkpoint ? readFileSync(opts.checkpoint, 'utf8') : undefined;
        if (opts.export) {
          const { header, leaves } = await readExport(opts.export);
          const verifier = await verifierFor(opts, io, header.verifierKey);
          const cps = [];
          try {
            cps.push(openCheckpoint(header.checkpoint, verifier, header.origin));
            if (trusted) cps.push(openCheckpoint(trusted, verifier, header.origin));
          } catch (err) {
            throw new CliExit(
              ExitCode.CHECK_FAILED,
              `checkpoint does not verify: ${(err as Error).message}`,
            );
          }
          const size = Math.max(...cps.map((c) => c.size));
          const result = await verifyLeaves(leaves, {
            size,
            checkpoints: cps,
            onProgress: progress(io),
          });
          report(io, result);
          return;
        }
        await withStore(opts, async (store) => {
          const verifier = await verifierFor(opts, io, await store.getMeta('verifier_key'));
          const origin = (await store.getMeta('origin')) ?? verifier.name;
          const result = await verifyStore(store, {
            verifier,
            origin,
            ...(trusted ? { trustedCheckpoint: trusted } : {}),
            ...(workers !== undefined ? { workers } : {}),
            onProgress: progress(io),
          });
          report(io, result);
        });
      },
    );

  withSource(audit.command('proof <index>'))
    .description('Print and check the inclusion proof of one leaf against the latest checkpoint')
    .option('--size <n>', 'tree size to prove against (default: latest signed checkpoint)')
    .action(async (indexText: string, opts: SourceOptions & { size?: string }) => {
      const index = Number(indexText);
      if (!Number.isSafeInteger(index) || index < 0)
        throw new CliExit(ExitCode.USAGE, 'index must be a leaf number');
      await withStore(opts, async (store) => {
        const verifier = await verifierFor(opts, io, await store.getMeta('verifier_key'));
        const origin = (await store.getMeta('origin')) ?? verifier.name;
        const cp = await latestCheckpoint(store);
        const body = openCheckpoint(cp.note, verifier, origin);
        const size = opts.size ? Number(opts.size) : body.size;
        if (!(index < size && size <= (await store.size()))) {
          throw new CliExit(
            ExitCode.FAILURE,
            `leaf ${index} is not in a tree of size ${size} (latest checkpoint ${body.size})`,
          );
        }
        const ranges = inclusionRanges(index, size);
        const nodes = await store.getNodes(nodesForRanges(ranges));
        const hashes = ranges.map(([s, e]) => hashRange(s, e, (l, i) => nodes.get(nodeKey(l, i))));
        const [leaf] = await store.readLeaves(index, index + 1);
        if (!leaf) throw new CliExit(ExitCode.CHECK_FAILED, `leaf ${index} is missing`);
        const root =
          size === body.size ? body.root : hashRange(0, size, (l, i) => nodes.get(nodeKey(l, i)));
        const ok =
          size === body.size && verifyInclusion(hashLeaf(leaf.data), index, size, hashes, root);
        io.out(
          `${JSON.stringify(
            {
              leafIndex: index,
              treeSize: size,
              leafHash: Buffer.from(hashLeaf(leaf.data)).toString('hex'),
              hashes: hashes.map((h) => Buffer.from(h).toString('base64')),
              record: JSON.parse(leaf.data.toString('utf8')) as unknown,
              checkpoint: size === body.size ? cp.note : undefined,
              verified: ok,
            },
            null,
            2,
          )}\n`,
        );
        if (size === body.size && !ok)
          throw new CliExit(ExitCode.CHECK_FAILED, `the proof of leaf ${index} does not verify`);
      });
    });

  withSource(audit.command('tail'))
    .description('Print the newest records as JSON lines; --follow keeps printing new ones')
    .option('-n, --lines <n>', 'how many of the newest records to print first', '10')
    .option('-f, --follow', 'keep watching for new records')
    .option('--interval <ms>', 'how often to look for new records when following', '500')
    .option('--stop-after <n>', 'when following, stop after this many new records')
    .action(
      async (
        opts: SourceOptions & {
          lines: string;
          follow?: boolean;
          interval: string;
          stopAfter?: string;
        },
      ) => {
        await withStore(opts, async (store) => {
          const print = (leaves: { index: number; data: Buffer }[]) => {
            for (const l of leaves)
              io.out(`{"index":${l.index},"record":${l.data.toString('utf8')}}\n`);
          };
          let size = await store.size();
          const n = Math.max(0, Number(opts.lines) || 0);
          print(await store.readLeaves(Math.max(0, size - n), size));
          if (!opts.follow) return;
          const stopAfter = opts.stopAfter ? Number(opts.stopAfter) : Number.POSITIVE_INFINITY;
          let seen = 0;
          while (seen < stopAfter) {
            await new Promise((r) => setTimeout(r, Number(opts.interval) || 500));
            const now = await store.size();
            if (now > size) {
              const leaves = (await store.readLeaves(size, now)).slice(0, stopAfter - seen);
              print(leaves);
              seen += leaves.length;
              size = now;
            }
          }
        });
      },
    );

  withSource(audit.command('export'))
    .description(
      'Write the log as JSON Lines (signed checkpoint first, then every record) for a SIEM',
    )
    .option('-o, --out <file>', 'output file (default: standard output)')
    .action(async (opts: SourceOptions & { out?: string }) => {
      await withStore(opts, async (store) => {
        const cp = await latestCheckpoint(store);
        const verifierKey = opts.key
          ? readKey(opts.key)
          : ((await store.getMeta('verifier_key')) ?? '');
        const origin = (await store.getMeta('origin')) ?? '';
        const file = opts.out ? createWriteStream(opts.out) : undefined;
        const write = (line: string) =>
          file
            ? new Promise<void>((resolve, reject) =>
                file.write(line, (err) => (err ? reject(err) : resolve())),
              )
            : io.out(line);
        const n = await exportLog(
          store,
          { origin, verifierKey, checkpoint: cp.note },
          cp.size,
          write,
        );
        if (file) await new Promise<void>((resolve) => file.end(resolve));
        io.err(`exported ${n} records up to the checkpoint of size ${cp.size}\n`);
      });
    });
}
