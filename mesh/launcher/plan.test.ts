import { join } from 'node:path';
import { EMBEDDED_CONFIG_PATH, loadConfig, parseConfig } from '../config/index.ts';
import { planMesh } from './plan.ts';
import { renderRunConfig } from './run-config.ts';

const demo = () => loadConfig({ file: EMBEDDED_CONFIG_PATH, env: {} });

describe('planMesh', () => {
  it('keeps the configured ports and runs a demo IdP per loopback organisation', () => {
    const plan = planMesh(demo());
    expect(plan.config.services.identity.port).toBe(7440);
    expect(plan.idps.map((i) => [i.org, i.port])).toEqual([
      ['acme', 7451],
      ['globex', 7452],
    ]);
  });

  it('moves every listener, the issuer URLs and trusted issuers to the port block', () => {
    const plan = planMesh(demo(), { portBase: 30_000 });
    const { services, organisations } = plan.config;
    expect(services.identity.publicUrl).toBe('https://127.0.0.1:30000');
    expect(services.audit.address).toBe('127.0.0.1:30002');
    expect(services.inference.metricsPort).toBe(30_013);
    expect(organisations[1]!.issuer).toBe('https://127.0.0.1:30021');
    expect(organisations[1]!.trustedIssuers[0]!.issuer).toBe('https://127.0.0.1:30021');
  });

  it('moves paths under the old state directory into the new one, and leaves others', () => {
    const loaded = demo();
    const plan = planMesh(loaded, { stateDir: '/tmp/elsewhere' });
    expect(plan.certsDir).toBe('/tmp/elsewhere/certs');
    expect(plan.config.organisations[0]!.clientSecretFile).toBe(
      '/tmp/elsewhere/secrets/acme-client-secret',
    );
    expect(plan.config.models[0]!.bundleDir).toBe('/tmp/elsewhere/models/iris');
    expect(plan.config.storage).toEqual({ kind: 'sqlite', path: '/tmp/elsewhere/audit.sqlite' });
    expect(plan.config.policy.policyFile).toBe(loaded.policy.policyFile);
  });

  it('refuses a port block that does not fit', () => {
    expect(() => planMesh(demo(), { portBase: 80 })).toThrow(/port base/);
    expect(() => planMesh(demo(), { portBase: 65_500 })).toThrow(/port base/);
  });

  it('writes a run configuration that loads back to the same mesh', () => {
    const plan = planMesh(demo(), { stateDir: '/tmp/run-state', portBase: 31_000 });
    const again = parseConfig(renderRunConfig(plan.config), {
      source: join(plan.runDir, 'bulwark.yaml'),
      env: {},
    });
    expect({ ...again, source: undefined }).toEqual({ ...plan.config, source: undefined });
  });
});
