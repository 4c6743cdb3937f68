import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BULWARK_BIN = join(import.meta.dirname, '..', '..', '..', 'bin', 'bulwark.js');

/** The caller's environment without BULWARK_* settings, so a developer's shell never leaks in. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BULWARK_'))),
    ...extra,
  };
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ host: '127.0.0.1', port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** A block of 25 free loopback ports for `bulwark up --port-base` (it uses base..base+21). */
export async function freePortBase(): Promise<number> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 400) * 100;
    let ok = true;
    for (let p = base; p < base + 25 && ok; p++) ok = await portFree(p);
    if (ok) return base;
  }
}

/** A `bulwark` command running as a child process, its output collected. */
export interface CliRun {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
}

export function runBulwark(args: string[], env: NodeJS.ProcessEnv = cleanEnv()): CliRun {
  const child = spawn(process.execPath, [BULWARK_BIN, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  return { child, out: () => out, err: () => err, exited };
}

/** Polls `check` every 100 ms until it holds; throws naming `what` after `ms`. */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  ms = 60_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A mesh started by `bulwark up` on a temporary state directory and free ports. */
export interface UpMesh {
  dir: string;
  stateDir: string;
  traceFile: string;
  base: number;
  run: CliRun;
  /** SIGINT, wait for the launcher to exit, remove the state directory. */
  stop(): Promise<number | null>;
}

/** Starts `bulwark up`; every service appends its spans (JSON lines) to `traceFile`. */
export async function startUp(): Promise<UpMesh> {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-e2e-'));
  const stateDir = join(dir, 'state');
  const traceFile = join(dir, 'spans.jsonl');
  const base = await freePortBase();
  const run = runBulwark(
    ['up', '--state-dir', stateDir, '--port-base', String(base)],
    cleanEnv({ BULWARK_TELEMETRY__TRACE_FILE: traceFile }),
  );
  try {
    await Promise.race([
      until('bulwark up to print its summary', () => run.out().includes('Press Ctrl-C')),
      run.exited.then((code) => {
        throw new Error(`bulwark up exited ${code}: ${run.err()}`);
      }),
    ]);
  } catch (err) {
    if (run.child.exitCode === null) run.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    stateDir,
    traceFile,
    base,
    run,
    async stop() {
      run.child.kill('SIGINT');
      const code = await run.exited;
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}
