import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createFileSource } from './policy-source.ts';
import { createPolicyStore, type PolicyStore } from './policy-store.ts';

const root = new URL('../../policy/', import.meta.url);

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('policy store', () => {
  let dir: string;
  let store: PolicyStore | undefined;
  const bob = { subject: 'acme/bob', org: 'acme', object: 'model:iris', action: 'infer' };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bulwark-policy-'));
    copyFileSync(new URL('model.conf', root), join(dir, 'model.conf'));
    copyFileSync(new URL('policy.yaml', root), join(dir, 'policy.yaml'));
  });
  afterEach(() => {
    store?.close();
    store = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const open = async (logger = capture().logger) =>
    (store = await createPolicyStore({
      source: createFileSource({
        modelPath: join(dir, 'model.conf'),
        policyPath: join(dir, 'policy.yaml'),
        debounceMs: 20,
      }),
      logger,
    }));

  it('caches decisions per revision', async () => {
    const s = await open();
    expect(s.decide(bob).allowed).toBe(true);
    expect(s.decide(bob).allowed).toBe(true);
    expect(s.cacheStats()).toMatchObject({ hits: 1, misses: 1, size: 1 });
  });

  it('hot-reloads a changed file and the change takes effect at once', async () => {
    const s = await open();
    const before = s.revision;
    expect(s.decide(bob).allowed).toBe(true);
    const text = readFileSync(join(dir, 'policy.yaml'), 'utf8');
    writeFileSync(join(dir, 'policy.yaml'), text.replace('acme/bob: [analyst]', 'acme/bob: []'));
    await until(() => s.revision !== before);
    expect(s.decide(bob)).toMatchObject({ allowed: false, revision: s.revision });
  });

  it('refuses a broken file, keeps serving the old revision and logs why', async () => {
    const { logger, lines } = capture();
    const s = await open(logger);
    const before = s.revision;
    const text = readFileSync(join(dir, 'policy.yaml'), 'utf8');
    writeFileSync(join(dir, 'policy.yaml'), text.replace("risk_tier == 'low'", "colour == 'blue'"));
    await until(() => lines.some((l) => l.event === 'policy.reload_refused'));
    const line = lines.find((l) => l.event === 'policy.reload_refused')!;
    expect(line.msg).toContain('unknown attribute "colour"');
    expect(line.msg).toContain(`still serving revision ${before}`);
    expect(line.code).toBe('ERR_POLICY_INVALID');
    expect(s.revision).toBe(before);
    expect(s.decide(bob)).toMatchObject({ allowed: true, revision: before });
    await expect(s.reload()).rejects.toMatchObject({ code: 'ERR_POLICY_INVALID' });

    writeFileSync(join(dir, 'policy.yaml'), 'version: 1\nrules: [\n  - id: x\n');
    await expect(s.reload()).rejects.toThrow('YAML syntax error');
    expect(s.revision).toBe(before);
  });

  it('refuses to start on a broken policy', async () => {
    writeFileSync(join(dir, 'policy.yaml'), 'version: 2\nrules: []\n');
    await expect(open()).rejects.toMatchObject({ code: 'ERR_POLICY_INVALID' });
    rmSync(join(dir, 'policy.yaml'));
    await expect(open()).rejects.toMatchObject({ code: 'ERR_POLICY_SOURCE_UNAVAILABLE' });
  });
});
