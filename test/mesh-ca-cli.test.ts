import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main, type CliIo } from '../cli/main.ts';
import { ExitCode } from '../cli/exit-codes.ts';
import { spiffeIdOf } from '../mesh/ca/index.ts';

function capture(): CliIo & { stdout: string; stderr: string } {
  const io = {
    stdout: '',
    stderr: '',
    out: (t: string) => {
      io.stdout += t;
    },
    err: (t: string) => {
      io.stderr += t;
    },
  };
  return io;
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulwark-ca-cli-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const run = async (...args: string[]) => {
  const io = capture();
  const code = await main(['node', 'bulwark', 'ca', ...args], io);
  return { code, ...io };
};

describe('bulwark ca', () => {
  it('init creates the CA with a 0600 key and refuses to replace it without --force', async () => {
    const first = await run('init', '--dir', dir, '--trust-domain', 'mesh.example');
    expect(first.code).toBe(ExitCode.OK);
    expect(first.stdout).toContain('spiffe://mesh.example');
    expect((await stat(join(dir, 'ca.key'))).mode & 0o777).toBe(0o600);
    const again = await run('init', '--dir', dir);
    expect(again.code).toBe(ExitCode.FAILURE);
    expect(again.stderr).toMatch(/already exists.*--force/);
    expect((await run('init', '--dir', dir, '--force')).code).toBe(ExitCode.OK);
  });

  it('issues service and partner certificates', async () => {
    await run('init', '--dir', dir);
    const svc = await run('issue', 'audit', '--dir', dir);
    expect(svc.code).toBe(ExitCode.OK);
    expect(svc.stdout).toContain('spiffe://bulwark.local/svc/audit');
    expect(spiffeIdOf(readFileSync(join(dir, 'audit.crt'), 'utf8'))).toBe(
      'spiffe://bulwark.local/svc/audit',
    );
    expect((await stat(join(dir, 'audit.key'))).mode & 0o777).toBe(0o600);

    const partner = await run(
      'issue',
      'scorer',
      '--client',
      '--org',
      'acme',
      '--days',
      '2',
      '--dir',
      dir,
    );
    expect(partner.code).toBe(ExitCode.OK);
    const cert = new X509Certificate(readFileSync(join(dir, 'partners/acme/scorer.crt')));
    expect(cert.subjectAltName).toBe('URI:spiffe://bulwark.local/partner/acme/scorer');
    const lifetime = cert.validToDate.getTime() - cert.validFromDate.getTime();
    // 48 h plus the one-minute backdating against clock skew.
    expect(lifetime).toBe(48 * 3_600_000 + 60_000);
  });

  it('exits with usage, unavailable and help codes scripts can rely on', async () => {
    expect((await run('issue', 'audit', '--dir', join(dir, 'missing'))).code).toBe(
      ExitCode.UNAVAILABLE,
    );
    await run('init', '--dir', dir);
    const badName = await run('issue', 'Not_A_Name', '--dir', dir);
    expect(badName.code).toBe(ExitCode.USAGE);
    expect(badName.stderr).toContain('service name "Not_A_Name" is invalid');
    const noOrg = await run('issue', 'scorer', '--client', '--dir', dir);
    expect(noOrg.code).toBe(ExitCode.USAGE);
    expect(noOrg.stderr).toContain('--client needs --org');
    expect((await run('issue', 'audit', '--days', '-1', '--dir', dir)).code).toBe(ExitCode.USAGE);
    const help = await run('issue', '--help');
    expect(help.code).toBe(ExitCode.OK);
    expect(help.stdout).toContain('Usage: bulwark ca issue');
  });

  it('puts the --dns and --ip names beside the loopback ones in a service certificate', async () => {
    await run('init', '--dir', dir);
    const out = await run(
      'issue',
      'identity',
      '--dir',
      dir,
      '--dns',
      'identity',
      '--dns',
      'Identity.Bulwark.svc',
      '--dns',
      'identity',
      '--ip',
      '10.0.0.7',
      '--ip',
      '[fd00::7]',
      '--ip',
      '::ffff:192.0.2.1',
    );
    expect(out.code).toBe(ExitCode.OK);
    expect(out.stdout).toContain('host names   localhost, identity, identity.bulwark.svc');
    const cert = new X509Certificate(readFileSync(join(dir, 'identity.crt')));
    const sans = (cert.subjectAltName ?? '').split(', ').sort();
    expect(sans).toEqual(
      [
        'URI:spiffe://bulwark.local/svc/identity',
        'DNS:localhost',
        'DNS:identity',
        'DNS:identity.bulwark.svc',
        'IP Address:127.0.0.1',
        'IP Address:0:0:0:0:0:0:0:1',
        'IP Address:10.0.0.7',
        'IP Address:FD00:0:0:0:0:0:0:7',
        'IP Address:0:0:0:0:0:FFFF:C000:201',
      ].sort(),
    );
    // What an HTTPS client inside the compose network checks: the name it dialled.
    expect(cert.checkHost('identity')).toBe('identity');
    expect(cert.checkHost('identity.bulwark.svc')).toBe('identity.bulwark.svc');
    expect(cert.checkIP('10.0.0.7')).toBe('10.0.0.7');
    expect(cert.checkHost('acme')).toBeUndefined();
    expect(cert.checkHost('evil.identity')).toBeUndefined();

    // Without --dns only the loopback names: another service name does not match.
    await run('issue', 'acme', '--dir', dir);
    const plain = new X509Certificate(readFileSync(join(dir, 'acme.crt')));
    expect(plain.checkHost('acme')).toBeUndefined();
    expect(plain.checkHost('localhost')).toBe('localhost');
  });

  it.each([
    [['--dns', '*.bulwark.svc'], /wildcard names are not issued/],
    [['--dns', '10.0.0.1'], /is an IP address: use --ip/],
    [['--dns', '10.0.0.256'], /is an IP address: use --ip/],
    [['--dns', 'bad_name'], /"bad_name" is not a DNS name/],
    [['--dns', '-lead.example'], /is not a DNS name/],
    [['--dns', 'a..b'], /is not a DNS name/],
    [['--dns', `${'a'.repeat(64)}.example`], /is not a DNS name/],
    [['--dns', ''], /is not a DNS name/],
    [['--ip', '10.0.0.256'], /"10.0.0.256" is not an IPv4 or IPv6 address/],
    [['--ip', 'identity'], /is not an IPv4 or IPv6 address/],
    [['--ip', 'fe80::1%eth0'], /is not an IPv4 or IPv6 address/],
    [['--ip', '010.0.0.1'], /is not an IPv4 or IPv6 address/],
  ])('refuses %j with a usage error and writes nothing', async (extra, message) => {
    await run('init', '--dir', dir);
    const out = await run('issue', 'identity', '--dir', dir, ...extra);
    expect(out.code).toBe(ExitCode.USAGE);
    expect(out.stderr).toMatch(message);
    expect(existsSync(join(dir, 'identity.crt'))).toBe(false);
    expect(existsSync(join(dir, 'identity.key'))).toBe(false);
  });

  it('refuses --dns and --ip on partner client certificates', async () => {
    await run('init', '--dir', dir);
    for (const extra of [
      ['--dns', 'scorer'],
      ['--ip', '10.0.0.7'],
    ]) {
      const out = await run('issue', 'scorer', '--client', '--org', 'acme', '--dir', dir, ...extra);
      expect(out.code).toBe(ExitCode.USAGE);
      expect(out.stderr).toContain('--dns and --ip only apply to service certificates');
    }
    expect(existsSync(join(dir, 'partners'))).toBe(false);
  });
});
