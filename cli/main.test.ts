import { main, type CliIo } from './main.ts';
import { ExitCode } from './exit-codes.ts';

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

describe('bulwark command', () => {
  it('prints help and exits 0', async () => {
    const io = capture();
    expect(await main(['node', 'bulwark', '--help'], io)).toBe(ExitCode.OK);
    expect(io.stdout).toContain('Usage: bulwark');
  });

  it('refuses an unknown command with the usage exit code', async () => {
    const io = capture();
    expect(await main(['node', 'bulwark', 'no-such-command'], io)).toBe(ExitCode.USAGE);
    expect(io.stderr).toMatch(/run with --help/);
  });
});
