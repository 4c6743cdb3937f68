import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { partnerFiles } from '../mesh/ca/index.ts';
import { loadConfig } from '../mesh/config/index.ts';
import { grpcHealthProbe, httpsProbe, meshProbe } from '../mesh/launcher/index.ts';
import { freePortBase, runBulwark, until } from './e2e/support/up-process.ts';

const run = (args: string[]) => runBulwark(args);

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('bulwark up', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bulwark-up-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('starts the mesh, restarts a killed service, and stops every process on SIGINT', async () => {
    const base = await freePortBase();
    const stateDir = join(dir, 'state');
    const up = run(['up', '--state-dir', stateDir, '--port-base', String(base)]);
    const seen = new Set<number>();
    try {
      await until('the summary', () => up.out().includes('Press Ctrl-C'));
      const pids = Object.fromEntries(
        [...up.out().matchAll(/^ {2}(\S+)\s+\S+(?: \(gRPC, TLS\))?\s+(\d+)$/gm)].map((m) => [
          m[1]!,
          Number(m[2]),
        ]),
      );
      expect(Object.keys(pids).sort()).toEqual([
        'audit',
        'identity',
        'idp-acme',
        'idp-globex',
        'inference',
        'policy',
      ]);
      for (const pid of Object.values(pids)) seen.add(pid);
      expect(up.out()).toContain(`bulwark login --org acme`);
      expect(up.out()).toContain(`bulwark infer --address 127.0.0.1:${base + 3} --model iris`);
      // No secret is printed; only the files that hold them.
      expect(up.out() + up.err()).not.toContain(
        readFileSync(join(stateDir, 'secrets', 'demo-password'), 'utf8').trim(),
      );
      for (const key of ['ca.key', 'audit.key', 'identity.key', 'gateway.key']) {
        expect(statSync(join(stateDir, 'certs', key)).mode & 0o777).toBe(0o600);
      }
      expect(statSync(join(stateDir, 'secrets', 'acme-client-secret')).mode & 0o777).toBe(0o600);

      const config = loadConfig({ file: join(stateDir, 'run', 'bulwark.yaml'), env: {} });
      const certs = join(stateDir, 'certs');
      const ca = join(certs, 'ca.crt');
      const probes = {
        audit: meshProbe(config.services.audit, config.trustDomain, certs),
        policy: meshProbe(config.services.policy, config.trustDomain, certs),
        inference: meshProbe(config.services.inference, config.trustDomain, certs),
        identity: httpsProbe(`https://127.0.0.1:${base}/.well-known/openid-configuration`, ca),
        acme: httpsProbe(`https://127.0.0.1:${base + 20}/.well-known/openid-configuration`, ca),
        globex: httpsProbe(`https://127.0.0.1:${base + 21}/.well-known/openid-configuration`, ca),
      };
      // A partner client certificate is not on audit's allow-list: its health call is refused.
      const intruder = grpcHealthProbe(
        config.services.audit,
        partnerFiles(certs, 'acme', 'backend'),
      );
      try {
        for (const [name, probe] of Object.entries(probes)) {
          expect([name, await probe.check()]).toEqual([name, true]);
        }
        expect(await intruder.check()).toBe(false);

        // kill -9 audit: the launcher restarts it and it serves again.
        const auditPid = pids.audit!;
        process.kill(auditPid, 'SIGKILL');
        await until('audit restarted', () => {
          const started = [...up.err().matchAll(/audit: started \(pid (\d+)\)/g)];
          const pid = Number(started.at(-1)?.[1]);
          return (
            pid !== auditPid &&
            up.err().lastIndexOf('audit: healthy') > up.err().lastIndexOf('audit: restarting')
          );
        });
        expect(up.err()).toMatch(/audit: exited \(signal SIGKILL\)/);
        expect(up.err()).toMatch(/audit: restarting in \d+ ms \(attempt 1\)/);
        for (const m of up.err().matchAll(/started \(pid (\d+)\)/g)) seen.add(Number(m[1]));
        await until('audit healthy again', () => probes.audit.check(), 10_000);
        expect(await probes.policy.check()).toBe(true);
      } finally {
        for (const probe of [...Object.values(probes), intruder]) probe.close();
      }

      up.child.kill('SIGINT');
      expect(await up.exited).toBe(0);
      expect(up.err()).toContain('stopped');
      expect(seen.size).toBeGreaterThanOrEqual(7);
      for (const pid of seen) expect([pid, alive(pid)]).toEqual([pid, false]);
    } finally {
      if (up.child.exitCode === null) up.child.kill('SIGKILL');
      for (const pid of seen) if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  }, 90_000);

  it('Ctrl-C while starting stops what already runs', async () => {
    const base = await freePortBase();
    const up = run(['up', '--state-dir', join(dir, 'state'), '--port-base', String(base)]);
    try {
      await until('the broker to start', () => up.err().includes('identity: started'));
      up.child.kill('SIGINT');
      expect(await up.exited).toBe(1);
      expect(up.err()).toContain('interrupted while starting');
      expect(up.out()).not.toContain('Press Ctrl-C');
      const pids = [...up.err().matchAll(/started \(pid (\d+)\)/g)].map((m) => Number(m[1]));
      expect(pids.length).toBeGreaterThanOrEqual(3);
      for (const pid of pids) expect([pid, alive(pid)]).toEqual([pid, false]);
    } finally {
      if (up.child.exitCode === null) up.child.kill('SIGKILL');
    }
  }, 60_000);

  it('leaves no orphans when the launcher itself is killed with SIGKILL', async () => {
    const base = await freePortBase();
    const up = run(['up', '--state-dir', join(dir, 'state'), '--port-base', String(base)]);
    let pids: number[] = [];
    try {
      await until('the summary', () => up.out().includes('Press Ctrl-C'));
      pids = [...up.err().matchAll(/started \(pid (\d+)\)/g)].map((m) => Number(m[1]));
      expect(pids).toHaveLength(6);
      up.child.kill('SIGKILL');
      await up.exited;
      await until('every service to stop', () => pids.every((pid) => !alive(pid)), 20_000);
    } finally {
      if (up.child.exitCode === null) up.child.kill('SIGKILL');
      for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  }, 60_000);

  it('refuses a port in use, naming the configuration key, before starting anything', async () => {
    const base = await freePortBase();
    const blocker = createServer().listen({ host: '127.0.0.1', port: base + 2 });
    await new Promise((r) => blocker.once('listening', r));
    try {
      const up = run(['up', '--state-dir', join(dir, 'state'), '--port-base', String(base)]);
      expect(await up.exited).toBe(4);
      expect(up.err()).toContain(`port ${base + 2} on 127.0.0.1 (services.audit.port) is in use`);
    } finally {
      blocker.close();
    }
  }, 30_000);

  it('refuses a bad configuration, naming the key', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'version: 1\nservices:\n  audit:\n    port: lots\n');
    const up = run(['up', '--config', file, '--state-dir', join(dir, 'state')]);
    expect(await up.exited).toBe(2);
    expect(up.err()).toMatch(/services\.audit\.port: expected an integer/);
  }, 30_000);

  it('serve refuses to start a service without its certificates and says how to make them', async () => {
    const serve = run(['serve', 'audit', '--state-dir', join(dir, 'empty')]);
    expect(await serve.exited).toBe(4);
    expect(serve.err()).toContain('no mesh CA certificate');
    expect(serve.err()).toContain('bulwark up');
  }, 30_000);
});
