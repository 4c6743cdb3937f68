import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EMBEDDED_CONFIG_PATH } from '../config/index.ts';
import { planServe } from './serve.ts';

describe('planServe', () => {
  let dir: string;
  let certs: string;
  // The CLI's own variables sit beside the configuration overrides and must not upset loading.
  const env = () => ({
    BULWARK_CONFIG: EMBEDDED_CONFIG_PATH,
    BULWARK_CERTS_DIR: certs,
    BULWARK_CA_FILE: '/x/ca.crt',
    BULWARK_TOKEN: 'not-a-config-key',
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bulwark-serve-'));
    certs = join(dir, 'certs');
    mkdirSync(certs);
    for (const f of ['ca.crt', 'audit.crt', 'audit.key', 'inference.crt', 'inference.key'])
      writeFileSync(join(certs, f), 'pem');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('runs audit from bulwark.yaml with the certificates directory and a port override', () => {
    const plan = planServe({ service: 'audit', stateDir: dir, port: 17_442, env: env() });
    expect(plan.entry).toMatch(/services\/audit\/main\.ts$/);
    expect(plan.args).toEqual(['--certs', certs]);
    expect(plan.env).toMatchObject({
      BULWARK_STATE_DIR: dir,
      BULWARK_SERVICES__AUDIT__PORT: '17442',
    });
  });

  it('refuses a service whose certificate is missing, naming the command that makes it', () => {
    expect(() => planServe({ service: 'policy', stateDir: dir, env: env() })).toThrow(
      /no certificate for policy .*bulwark ca issue policy/,
    );
  });

  it('runs a demo IdP of a configured organisation (compose: serve demo-idp acme)', () => {
    const plan = planServe({ service: 'demo-idp', org: 'acme', stateDir: dir, env: env() });
    expect(plan.args).toEqual(
      expect.arrayContaining(['--org', 'acme', '--port', '7451', '--host', '127.0.0.1']),
    );
    expect(plan.args.join(' ')).toContain('--redirect-uri https://127.0.0.1:7440/login/callback');
    // On loopback the listen address is the issuer: no --issuer needed.
    expect(plan.args).not.toContain('--issuer');
    expect(() =>
      planServe({ service: 'demo-idp', org: 'initech', stateDir: dir, env: env() }),
    ).toThrow(/known: acme, globex/);
  });

  it('writes the broker options with file paths only', () => {
    const plan = planServe({ service: 'identity', stateDir: dir, env: env() });
    const file = plan.files[0]!;
    expect(plan.args).toEqual(['--options-file', file.path]);
    expect(file.mode).toBe(0o600);
    const launch = JSON.parse(file.content) as { clients: { clientId: string }[] };
    expect(launch.clients.map((c) => c.clientId)).toContain('bulwark-cli');
    expect(file.content).toContain('"clientSecretFile"');
  });

  it('serves the newest version of a folder of model versions and trusts its signer', () => {
    const models = join(dir, 'models');
    for (const v of ['1', '2', '10']) {
      mkdirSync(join(models, 'iris', v), { recursive: true });
      writeFileSync(join(models, 'iris', v, 'manifest.json'), '{}');
    }
    writeFileSync(join(dir, 'demo-signer.pub'), 'key');
    const withModels = { ...env(), BULWARK_MODELS__IRIS__BUNDLE_DIR: join(models, 'iris') };
    const plan = planServe({ service: 'inference', stateDir: dir, env: withModels });
    expect(plan.env.BULWARK_MODELS__IRIS__BUNDLE_DIR).toBe(join(models, 'iris', '10'));
    expect(plan.args).toEqual(['--certs', certs, '--trust', join(dir, 'demo-signer.pub')]);
    const explicit = planServe({
      service: 'inference',
      stateDir: dir,
      trust: ['/k.pub'],
      env: env(),
    });
    expect(explicit.args).toEqual(['--certs', certs, '--trust', '/k.pub']);
  });

  it('keeps the broker in PostgreSQL when given a URL file, naming only the file', () => {
    const urlFile = join(dir, 'identity-postgres-url');
    writeFileSync(urlFile, 'postgres://identity:s3cret-pw@db:5432/identity\n');
    for (const plan of [
      planServe({ service: 'identity', stateDir: dir, postgresUrlFile: urlFile, env: env() }),
      planServe({
        service: 'identity',
        stateDir: dir,
        env: { ...env(), BULWARK_IDENTITY_POSTGRES_URL_FILE: urlFile },
      }),
    ]) {
      const file = plan.files[0]!;
      const launch = JSON.parse(file.content) as { postgres?: unknown; databasePath?: string };
      expect(launch.postgres).toEqual({ urlFile });
      expect(launch.databasePath).toBeUndefined();
      // The URL and its password stay in their file: never in the plan, its notes or its env.
      expect(JSON.stringify(plan)).not.toContain('s3cret-pw');
    }
    const sqlite = planServe({ service: 'identity', stateDir: dir, env: env() });
    const launch = JSON.parse(sqlite.files[0]!.content) as { postgres?: unknown };
    expect(launch.postgres).toBeUndefined();
    expect(sqlite.files[0]!.content).toContain('identity.sqlite');
  });

  it('names a demo IdP by its issuer URL when it listens on every interface (compose)', () => {
    const plan = planServe({
      service: 'demo-idp',
      org: 'acme',
      stateDir: dir,
      env: { ...env(), BULWARK_ORGANISATIONS__ACME__ISSUER: 'https://acme:7451' },
    });
    expect(plan.args.join(' ')).toContain('--host 0.0.0.0 --port 7451');
    expect(plan.args.join(' ')).toContain('--issuer https://acme:7451');
  });
});
