import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from './config-error.ts';
import { EMBEDDED_CONFIG_PATH, loadConfig, parseConfig, readSecretFile } from './load.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bulwark-config-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `fn`, expecting a ConfigError; returns it. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const ORG = `
organisations:
  acme:
    displayName: Acme
    issuer: https://idp.acme.example
    clientId: broker
    clientSecretFile: secrets/acme
    emailDomains: [acme.example]
`;

describe('loadConfig', () => {
  it('loads the embedded demo mesh when no file is given or found', () => {
    const config = loadConfig({ env: {}, cwd: dir });
    expect(config.source).toBe(EMBEDDED_CONFIG_PATH);
    expect(config.trustDomain).toBe('bulwark.local');
    expect(config.organisations.map((o) => o.id)).toEqual(['acme', 'globex']);
    expect(config.models.map((m) => [m.name, m.riskTier])).toEqual([
      ['iris', 'low'],
      ['credit', 'high'],
    ]);
    expect(Object.keys(config.services)).toEqual([
      'identity',
      'policy',
      'audit',
      'inference',
      'gateway',
    ]);
    expect(config.services.audit.allowedPeers).toContain('spiffe://bulwark.local/svc/inference');
    expect(config.services.inference.allowedPeers).toContain('spiffe://bulwark.local/partner/*');
    expect(config.organisations[0]?.trustedIssuers[0]?.audience).toBe('urn:bulwark:identity');
  });

  it('prefers BULWARK_CONFIG, then ./bulwark.yaml', () => {
    writeFileSync(join(dir, 'bulwark.yaml'), 'trustDomain: local.test\n');
    writeFileSync(join(dir, 'other.yaml'), 'trustDomain: other.test\n');
    expect(loadConfig({ env: {}, cwd: dir }).trustDomain).toBe('local.test');
    expect(loadConfig({ env: { BULWARK_CONFIG: 'other.yaml' }, cwd: dir }).trustDomain).toBe(
      'other.test',
    );
  });

  it('says which file is missing', () => {
    const err = configError(() => loadConfig({ file: 'nope.yaml', env: {}, cwd: dir }));
    expect(err.code).toBe('ERR_CONFIG_NOT_FOUND');
    expect(err.message).toContain(join(dir, 'nope.yaml'));
  });

  it('fills every default from an empty file', () => {
    const config = parseConfig('', { env: {}, cwd: dir });
    expect(config.stateDir).toBe(join(dir, '.bulwark'));
    expect(config.services.policy).toMatchObject({
      address: '127.0.0.1:7441',
      metricsPort: 9441,
      clientCertificate: 'required',
      spiffeId: 'spiffe://bulwark.local/svc/policy',
    });
    expect(config.storage).toEqual({ kind: 'sqlite', path: join(dir, '.bulwark', 'audit.sqlite') });
    expect(config.telemetry).toEqual({ logLevel: 'info', metricsHost: '127.0.0.1' });
    expect(config.organisations).toEqual([]);
  });

  it('resolves file paths against the file and variable paths against the working directory', () => {
    const file = join(dir, 'conf', 'bulwark.yaml');
    const config = parseConfig(ORG + 'telemetry: { traceFile: spans.jsonl }\n', {
      source: file,
      env: { BULWARK_STATE_DIR: 'state' },
      cwd: '/srv/run',
    });
    expect(config.organisations[0]?.clientSecretFile).toBe(join(dir, 'conf', 'secrets', 'acme'));
    expect(config.telemetry.traceFile).toBe(join(dir, 'conf', 'spans.jsonl'));
    expect(config.stateDir).toBe('/srv/run/state');
  });
});

describe('inference quotas', () => {
  it('default per risk tier, and a key left out keeps its default', () => {
    expect(parseConfig('', { env: {} }).inference.quotas).toEqual({
      low: { ratePerSec: 50, burst: 100, dailyBudget: 100_000 },
      medium: { ratePerSec: 10, burst: 20, dailyBudget: 10_000 },
      high: { ratePerSec: 2, burst: 5, dailyBudget: 1_000 },
    });
    const config = parseConfig('inference:\n  quotas:\n    high: { ratePerSec: 0.5 }\n', {
      env: { BULWARK_INFERENCE__QUOTAS__LOW__DAILY_BUDGET: '500' },
    });
    expect(config.inference.quotas.high).toEqual({ ratePerSec: 0.5, burst: 5, dailyBudget: 1_000 });
    expect(config.inference.quotas.low).toEqual({ ratePerSec: 50, burst: 100, dailyBudget: 500 });
  });

  it('refuses quotas that would stop or never stop a caller, naming the key', () => {
    const err = configError(() =>
      parseConfig(
        'inference:\n  quotas:\n    low: { ratePerSec: 0, burst: 2.5 }\n    medium: { dailyBudget: -1 }\n    extreme: {}\n    high: { rate: 3 }\n',
        { env: {} },
      ),
    );
    expect(err.issues).toEqual([
      'inference.quotas.low.ratePerSec: expected a number of requests per second above 0, got 0',
      'inference.quotas.low.burst: expected a whole number of requests, at least 1, got 2.5',
      'inference.quotas.medium.dailyBudget: expected a whole number of requests per UTC day, at least 1, got -1',
      expect.stringMatching(/^inference\.quotas\.high\.rate: unknown key/),
      expect.stringMatching(/^inference\.quotas\.extreme: unknown key/),
    ]);
  });
});

describe('validation errors name the key and the expected form', () => {
  it('a port that is not a number', () => {
    const err = configError(() => parseConfig('services:\n  audit:\n    port: abc\n', { env: {} }));
    expect(err.code).toBe('ERR_CONFIG_INVALID');
    expect(err.issues).toEqual(['services.audit.port: expected an integer 0-65535, got "abc"']);
    expect(err.message).toContain('services.audit.port: expected an integer 0-65535, got "abc"');
  });

  it('every problem at once, in order', () => {
    const err = configError(() =>
      parseConfig(
        'trustDomain: Bad Domain\nservices:\n  audit: { port: 70000 }\n  audti: {}\nmodels:\n  iris: { bundleDir: x, riskTier: extreme }\n',
        { env: {} },
      ),
    );
    expect(err.issues).toEqual([
      expect.stringMatching(/^trustDomain: expected a trust domain .*got "Bad Domain"$/),
      'services.audit.port: expected an integer 0-65535, got 70000',
      expect.stringMatching(/^services\.audti: unknown key/),
      'models.iris.riskTier: expected "low", "medium" or "high", got "extreme"',
    ]);
  });

  it('a missing required key', () => {
    const err = configError(() =>
      parseConfig(ORG.replace('    clientId: broker\n', ''), { env: {} }),
    );
    expect(err.issues).toEqual([
      'organisations.acme.clientId: expected the client id registered at the organisation’s IdP, got nothing',
    ]);
  });

  it('YAML syntax, with the line', () => {
    const err = configError(() => parseConfig('services:\n  audit: [\n', { env: {} }));
    expect(err.code).toBe('ERR_CONFIG_SYNTAX');
    expect(err.issues[0]).toMatch(/^line \d+, column \d+: /);
  });

  it('a duplicated key', () => {
    const err = configError(() => parseConfig('stateDir: a\nstateDir: b\n', { env: {} }));
    expect(err.code).toBe('ERR_CONFIG_SYNTAX');
  });
});

describe('refusals', () => {
  it('refuses a literal client secret without echoing it', () => {
    const text = ORG + '    clientSecret: hunter2-very-secret\n';
    const err = configError(() => parseConfig(text, { env: {} }));
    expect(err.issues).toEqual([
      expect.stringMatching(
        /^organisations\.acme\.clientSecret: literal secrets are not accepted; .*clientSecretFile/,
      ),
    ]);
    expect(err.message).not.toContain('hunter2');
  });

  it('refuses a plain-http issuer that is not on this machine', () => {
    const err = configError(() =>
      parseConfig(ORG.replace('https://idp.acme.example', 'http://idp.acme.example'), {
        env: {},
      }),
    );
    expect(err.issues[0]).toMatch(
      /^organisations\.acme\.issuer: expected an https:\/\/ URL .*got "http:\/\/idp\.acme\.example"$/,
    );
    expect(() =>
      parseConfig(ORG.replace('https://idp.acme.example', 'http://127.0.0.1:7451'), { env: {} }),
    ).not.toThrow();
  });

  it('refuses a database URL with a password, and never shows the password', () => {
    const err = configError(() =>
      parseConfig('storage: { kind: postgres, url: "postgres://bulwark:pa55@db/bulwark" }\n', {
        env: {},
      }),
    );
    expect(err.issues[0]).toMatch(/^storage\.url: expected a postgres:\/\/ URL without a password/);
    expect(err.message).not.toContain('pa55');
  });

  it('refuses an email domain claimed by two organisations', () => {
    const text =
      ORG +
      '  evil:\n    displayName: Evil\n    issuer: https://idp.evil.example\n    clientId: b\n    clientSecretFile: s\n    emailDomains: [ACME.example]\n';
    const err = configError(() => parseConfig(text, { env: {} }));
    expect(err.issues).toEqual([
      'organisations.evil.emailDomains.0: expected a domain no other organisation claims, got "acme.example" (already in acme)',
    ]);
  });

  it('refuses two services on one port', () => {
    const err = configError(() =>
      parseConfig('services:\n  audit: { port: 7000 }\n  policy: { port: 7000 }\n', { env: {} }),
    );
    expect(err.issues[0]).toMatch(/^services\.(audit|policy)\.port: expected a port no other/);
  });

  it('refuses a trusted issuer without an expected audience', () => {
    const text = ORG + '    trustedIssuers:\n      - issuer: https://sts.acme.example\n';
    const err = configError(() => parseConfig(text, { env: {} }));
    expect(err.issues[0]).toMatch(/^organisations\.acme\.trustedIssuers\.0\.audience: expected/);
  });

  it('refuses a secret file that other users can read, never printing its content', () => {
    const file = join(dir, 'secret');
    writeFileSync(file, 'top-secret-value\n', { mode: 0o644 });
    chmodSync(file, 0o644);
    const err = configError(() => readSecretFile(file));
    expect(err.code).toBe('ERR_CONFIG_SECRET_FILE');
    expect(err.message).toContain('chmod 600');
    expect(err.message).not.toContain('top-secret-value');
    chmodSync(file, 0o600);
    expect(readSecretFile(file)).toBe('top-secret-value');
    expect(configError(() => readSecretFile(join(dir, 'missing'))).code).toBe(
      'ERR_CONFIG_SECRET_FILE',
    );
  });
});

describe('BULWARK_* overrides', () => {
  it('override nested keys, lists and list items', () => {
    const config = parseConfig(ORG, {
      env: {
        BULWARK_SERVICES__AUDIT__PORT: '7450',
        BULWARK_SERVICES__AUDIT__METRICS_PORT: '0',
        BULWARK_SERVICES__AUDIT__PEERS: '[inference, spiffe://other.test/svc/x]',
        BULWARK_ORGANISATIONS__ACME__EMAIL_DOMAINS__0: 'acme.test',
        BULWARK_TRUST_DOMAIN: 'corp.test',
        BULWARK_TELEMETRY__LOG_LEVEL: 'debug',
        OTHER: 'ignored',
      },
    });
    expect(config.trustDomain).toBe('corp.test');
    expect(config.services.audit).toMatchObject({
      port: 7450,
      metricsPort: 0,
      allowedPeers: ['spiffe://corp.test/svc/inference', 'spiffe://other.test/svc/x'],
    });
    expect(config.organisations[0]?.emailDomains).toEqual(['acme.test']);
    expect(config.telemetry.logLevel).toBe('debug');
  });

  it('keep a string a string when the file holds a string', () => {
    const config = parseConfig(ORG, { env: { BULWARK_ORGANISATIONS__ACME__CLIENT_ID: '12345' } });
    expect(config.organisations[0]?.clientId).toBe('12345');
  });

  it('name the variable in errors', () => {
    const err = configError(() =>
      parseConfig('', { env: { BULWARK_SERVICES__AUDIT__PORT: 'abc' } }),
    );
    expect(err.issues).toEqual([
      'services.audit.port (from BULWARK_SERVICES__AUDIT__PORT): expected an integer 0-65535, got "abc"',
    ]);
    const unknown = configError(() => parseConfig('', { env: { BULWARK_SERVCES__X: '1' } }));
    expect(unknown.issues[0]).toMatch(/^servces \(from BULWARK_SERVCES__X\): unknown key/);
  });

  it("leave the commands' own BULWARK_* variables alone", () => {
    const config = parseConfig('trustDomain: x.test\n', {
      env: {
        BULWARK_TOKEN: 'not-a-key',
        BULWARK_CA_FILE: '/tmp/ca.crt',
        BULWARK_ISSUER: 'https://127.0.0.1:7440',
        BULWARK_TRUST_DOMAIN: 'y.test',
      },
    });
    expect(config.trustDomain).toBe('y.test');
  });

  it('refuse malformed variable names and paths through single values', () => {
    expect(configError(() => parseConfig('', { env: { BULWARK_A____B: '1' } })).code).toBe(
      'ERR_CONFIG_ENV',
    );
    const err = configError(() =>
      parseConfig('trustDomain: x\n', { env: { BULWARK_TRUST_DOMAIN__PART: '1' } }),
    );
    expect(err.code).toBe('ERR_CONFIG_ENV');
    expect(err.message).toContain('BULWARK_TRUST_DOMAIN__PART');
  });
});
