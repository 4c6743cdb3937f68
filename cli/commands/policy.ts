import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import pg from 'pg';
import type { CliIo } from '../main.ts';
import { CliExit, ExitCode } from '../exit-codes.ts';
import { errorCode } from '../../mesh/errors.ts';
import {
  createFileSource,
  createPolicyEngine,
  parseAttributeArgs,
  parsePolicyCases,
  runPolicyCases,
  writePolicy,
  type PolicyEngine,
} from '../../services/policy/index.ts';

interface PolicyFileOptions {
  model: string;
  policy: string;
}

async function loadEngine(opts: PolicyFileOptions): Promise<PolicyEngine> {
  try {
    const { modelText, policy } = await createFileSource({
      modelPath: opts.model,
      policyPath: opts.policy,
    }).load();
    return createPolicyEngine({ modelText, policy });
  } catch (err) {
    const code =
      errorCode(err) === 'ERR_POLICY_SOURCE_UNAVAILABLE' ? ExitCode.UNAVAILABLE : ExitCode.FAILURE;
    const message = err instanceof Error ? err.message : String(err);
    throw new CliExit(code, `${message} (fix the policy and run again)`, { cause: err });
  }
}

function withFiles(cmd: Command): Command {
  return cmd
    .option('--model <path>', 'Casbin model file', 'policy/model.conf')
    .option('--policy <path>', 'policy file (YAML)', 'policy/policy.yaml');
}

/**
 * `bulwark policy test <cases.yaml>`, `bulwark policy check <sub> <org> <obj> <act> [attrs...]`
 * and `bulwark policy push --database-url <url>`.
 */
export function registerPolicyCommands(program: Command, io: CliIo): void {
  const policy = program.command('policy').description('Test and explain authorisation policy');

  withFiles(
    policy
      .command('test')
      .description('Run expected allow/deny cases against the policy; exit 3 on any mismatch')
      .argument('<cases>', 'YAML file with a `cases:` list (see policy/cases.yaml)'),
  ).action(async (casesPath: string, opts: PolicyFileOptions) => {
    const engine = await loadEngine(opts);
    let text: string;
    try {
      text = await readFile(casesPath, 'utf8');
    } catch (err) {
      throw new CliExit(ExitCode.UNAVAILABLE, `cannot read ${casesPath}`, { cause: err });
    }
    let cases;
    try {
      cases = parsePolicyCases(text, casesPath);
    } catch (err) {
      throw new CliExit(ExitCode.USAGE, err instanceof Error ? err.message : String(err));
    }
    const results = runPolicyCases(engine, cases);
    const failed = results.filter((r) => r.failure !== undefined);
    for (const r of results) {
      io.out(`${r.failure ? 'FAIL' : 'ok  '} ${r.case.name}${r.failure ? `: ${r.failure}` : ''}\n`);
    }
    io.out(
      `${results.length - failed.length} passed, ${failed.length} failed (revision ${engine.revision})\n`,
    );
    if (failed.length)
      throw new CliExit(ExitCode.CHECK_FAILED, `${failed.length} policy case(s) failed`);
  });

  withFiles(
    policy
      .command('push')
      .description(
        'Validate the policy files and store them in PostgreSQL; every policy replica reloads at once',
      )
      .requiredOption(
        '--database-url <url>',
        'postgres://user@host:port/db (put the password in PGPASSWORD or ~/.pgpass, not here)',
      ),
  ).action(async (opts: PolicyFileOptions & { databaseUrl: string }) => {
    const engine = await loadEngine(opts);
    const modelText = await readFile(opts.model, 'utf8');
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 1 });
    pool.on('error', () => undefined);
    try {
      io.err('writing policy to PostgreSQL...\n');
      const revision = await writePolicy(pool, modelText, engine.policy);
      io.out(`stored revision ${revision} (${engine.ruleCount} rules)\n`);
    } catch (err) {
      // The message of a connection error never includes the password.
      const message = err instanceof Error ? err.message : String(err);
      throw new CliExit(ExitCode.UNAVAILABLE, `cannot store the policy: ${message}`, {
        cause: err,
      });
    } finally {
      await pool.end();
    }
  });

  withFiles(
    policy
      .command('check')
      .description('Decide one request and explain it; exit 0 when allowed, 3 when denied')
      .argument('<subject>', 'subject, e.g. acme/alice')
      .argument('<org>', 'organisation, e.g. acme')
      .argument('<object>', 'object, e.g. model:credit')
      .argument('<action>', 'action, e.g. infer')
      .argument(
        '[attributes...]',
        'key=value: acr, certificate_bound, batch_size, source_address, time, scopes, ...',
      )
      .option('--roles <roles>', 'comma-separated roles carried by the token', ''),
  ).action(
    async (
      subject: string,
      org: string,
      object: string,
      action: string,
      attrs: string[],
      opts: PolicyFileOptions & { roles: string },
    ) => {
      let attributes;
      try {
        attributes = parseAttributeArgs(attrs);
      } catch (err) {
        throw new CliExit(ExitCode.USAGE, err instanceof Error ? err.message : String(err));
      }
      const engine = await loadEngine(opts);
      const roles = opts.roles.split(',').filter(Boolean);
      let x;
      try {
        x = engine.explain({ subject, org, object, action, attributes, roles });
      } catch (err) {
        throw new CliExit(ExitCode.USAGE, err instanceof Error ? err.message : String(err));
      }
      io.out(`${x.decision.allowed ? 'ALLOW' : 'DENY'}: ${x.decision.reason}\n`);
      io.out(`revision: ${x.decision.revision}\n`);
      io.out(`roles of ${subject} in ${org}: ${x.roles.join(', ') || '(none)'}\n`);
      io.out(x.rules.length ? 'rules considered:\n' : 'no rule covers this object\n');
      for (const r of x.rules) {
        io.out(`  ${r.matched ? '*' : ' '} ${r.effect.padEnd(5)} ${r.rule}: ${r.detail}\n`);
      }
      if (!x.decision.allowed) throw new CliExit(ExitCode.CHECK_FAILED, 'denied');
    },
  );
}
