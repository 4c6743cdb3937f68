import { readFileSync } from 'node:fs';
import pg from 'pg';
import { pino } from 'pino';
import { startPostgres, type PostgresInstance } from './support/postgres.ts';
import { main } from '../cli/main.ts';
import {
  compilePolicyYaml,
  createPolicyStore,
  createPostgresSource,
  writePolicy,
  type PolicySource,
  type PolicyStore,
} from '../services/policy/index.ts';

const root = new URL('../policy/', import.meta.url);
const modelPath = new URL('model.conf', root).pathname;
const policyPath = new URL('policy.yaml', root).pathname;
const modelText = readFileSync(modelPath, 'utf8');
const yaml = readFileSync(new URL('policy.yaml', root), 'utf8');
const quiet = pino({ level: 'silent' });

async function until(check: () => boolean, ms = 10_000): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - start;
}

describe('policy in PostgreSQL with two replicas', () => {
  let db: PostgresInstance;
  let pool: pg.Pool;
  const sources: PolicySource[] = [];
  const replicas: PolicyStore[] = [];
  const bob = { subject: 'acme/bob', org: 'acme', object: 'model:iris', action: 'infer' };

  beforeAll(async () => {
    db = await startPostgres();
    pool = new pg.Pool({ connectionString: db.url, max: 2 });
    // The server is stopped under the pool at the end; its idle clients then report that.
    pool.on('error', () => undefined);
    await writePolicy(pool, modelText, compilePolicyYaml(yaml));
    for (let i = 0; i < 2; i += 1) {
      const source = createPostgresSource({ url: db.url, logger: quiet, reconnectMs: 100 });
      sources.push(source);
      replicas.push(await createPolicyStore({ source, logger: quiet }));
    }
  }, 60_000);

  afterAll(async () => {
    for (const r of replicas) r.close();
    for (const s of sources) await s.close?.();
    await pool?.end();
    await db?.stop();
  });

  it('serves the same revision as the file form of the same policy', () => {
    const [a, b] = replicas;
    expect(a!.revision).toBe(b!.revision);
    expect(a!.decide(bob).allowed).toBe(true);
  });

  it('both replicas converge on a change through LISTEN/NOTIFY', async () => {
    const changed = yaml.replace('acme/bob: [analyst]', 'acme/bob: []');
    const revision = await writePolicy(pool, modelText, compilePolicyYaml(changed));
    const ms = await until(() => replicas.every((r) => r.revision === revision));
    // Reported, not asserted as a speed target: convergence is notification-driven (sub-second).
    process.stderr.write(`policy replicas converged in ${ms} ms\n`);
    for (const r of replicas) expect(r.decide(bob)).toMatchObject({ allowed: false, revision });
  });

  it('replicas whose notification connection is cut reconnect and catch up', async () => {
    const cut = await pool.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN %'`,
    );
    expect(cut.rowCount).toBe(2);
    const revision = await writePolicy(
      pool,
      modelText,
      compilePolicyYaml(yaml.replace('acme/ops: [model-admin]', 'acme/ops: []')),
    );
    await until(() => replicas.every((r) => r.revision === revision));
  });

  it('bulwark policy push stores the files and the replicas follow', async () => {
    let out = '';
    const code = await main(
      [
        'node',
        'bulwark',
        'policy',
        'push',
        '--database-url',
        db.url,
        '--model',
        modelPath,
        '--policy',
        policyPath,
      ],
      { out: (t) => void (out += t), err: () => undefined },
    );
    expect(code).toBe(0);
    const revision = /stored revision (sha256:[0-9a-f]{64})/.exec(out)![1]!;
    await until(() => replicas.every((r) => r.revision === revision));
    expect(replicas[0]!.decide(bob).allowed).toBe(true);
    const down = await main(
      [
        'node',
        'bulwark',
        'policy',
        'push',
        '--database-url',
        'postgres://nobody@127.0.0.1:1/x',
        '--model',
        modelPath,
        '--policy',
        policyPath,
      ],
      { out: () => undefined, err: () => undefined },
    );
    expect(down).toBe(4);
  });

  it('a broken row written behind the service is refused and the old revision keeps serving', async () => {
    const before = replicas[0]!.revision;
    await pool.query(
      `UPDATE bulwark_policy_rule SET v4 = 'colour == ''red''' WHERE ptype = 'p' AND v6 = 'analysts-use-low-risk-models'`,
    );
    await pool.query(`SELECT pg_notify('bulwark_policy', 'manual')`);
    await expect(replicas[0]!.reload()).rejects.toThrow('unknown attribute "colour"');
    expect(replicas.map((r) => r.revision)).toEqual([before, before]);
    // A valid write afterwards is picked up again.
    const fixed = await writePolicy(
      pool,
      modelText,
      compilePolicyYaml(yaml.replace('globex/grace: [analyst]', 'globex/grace: []')),
    );
    await until(() => replicas.every((r) => r.revision === fixed));
  });
});
