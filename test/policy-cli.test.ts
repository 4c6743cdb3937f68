import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../cli/main.ts';

const root = new URL('../policy/', import.meta.url);

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['node', 'bulwark', ...args], {
    out: (t) => void (out += t),
    err: (t) => void (err += t),
  });
  return { code, out, err };
}

describe('bulwark policy', () => {
  let dir: string;
  let files: string[];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bulwark-policy-cli-'));
    for (const f of ['model.conf', 'policy.yaml', 'cases.yaml'])
      copyFileSync(new URL(f, root), join(dir, f));
    files = ['--model', join(dir, 'model.conf'), '--policy', join(dir, 'policy.yaml')];
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('test passes the shipped cases against the shipped policy', async () => {
    const r = await run('policy', 'test', join(dir, 'cases.yaml'), ...files);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/10 passed, 0 failed \(revision sha256:/);
  });

  it('test exits 3 and names the case on a mismatch', async () => {
    const cases = readFileSync(join(dir, 'cases.yaml'), 'utf8').replace(
      'name: analysts cannot administer models\n    subject: acme/bob\n    org: acme\n    object: model:iris\n    action: admin\n    expect: deny',
      'name: analysts cannot administer models\n    subject: acme/bob\n    org: acme\n    object: model:iris\n    action: admin\n    expect: allow',
    );
    writeFileSync(join(dir, 'cases.yaml'), cases);
    const r = await run('policy', 'test', join(dir, 'cases.yaml'), ...files);
    expect(r.code).toBe(3);
    expect(r.out).toContain('FAIL analysts cannot administer models: expected allow, got deny');
    expect(r.err).toContain('1 policy case(s) failed');
  });

  it('test refuses a policy with an unknown attribute (exit 1) and a missing file (exit 4)', async () => {
    const text = readFileSync(join(dir, 'policy.yaml'), 'utf8');
    writeFileSync(join(dir, 'policy.yaml'), text.replace("acr == 'mfa'", "mood == 'good'"));
    const r = await run('policy', 'test', join(dir, 'cases.yaml'), ...files);
    expect(r.code).toBe(1);
    expect(r.err).toContain('unknown attribute "mood"');
    const missing = await run(
      'policy',
      'test',
      join(dir, 'nope.yaml'),
      ...files.slice(0, 2),
      '--policy',
      join(dir, 'gone.yaml'),
    );
    expect(missing.code).toBe(4);
  });

  it('check explains an allow (exit 0) and a deny (exit 3)', async () => {
    const allow = await run(
      'policy',
      'check',
      'acme/alice',
      'acme',
      'model:credit',
      'infer',
      'acr=mfa',
      'certificate_bound=true',
      'batch_size=2',
      ...files,
    );
    expect(allow.code).toBe(0);
    expect(allow.out).toContain('ALLOW: allowed by rule "acme-credit-officers-score-credit"');
    expect(allow.out).toContain('roles of acme/alice in acme: analyst, credit-officer');
    const deny = await run(
      'policy',
      'check',
      'globex/grace',
      'globex',
      'model:credit',
      'infer',
      'batch_size=1',
      'acr=mfa',
      'certificate_bound=true',
      '--roles',
      'credit-officer',
      ...files,
    );
    expect(deny.code).toBe(3);
    expect(deny.out).toContain('DENY: no rule allows');
  });

  it('check refuses unknown attributes as a usage error', async () => {
    const r = await run(
      'policy',
      'check',
      'acme/bob',
      'acme',
      'model:iris',
      'infer',
      'colour=red',
      ...files,
    );
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown attribute "colour"');
  });
});
