/**
 * `bulwark up` as the benchmark runs it: a child process on a temporary state directory and a
 * free block of loopback ports, with the pid of every service it supervises read from its
 * progress lines (`up: <name>: started (pid <n>)`), restarts counted, and a stop that leaves no
 * process and no state directory behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BULWARK_BIN = join(ROOT, 'bin', 'bulwark.js');

/** Ports `bulwark up --port-base <b>` uses: b..b+21 (services, metrics, demo IdPs). */
const PORTS_USED = 25;

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ host: '127.0.0.1', port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** A base port whose whole block is free on loopback. */
export async function freePortBase(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 400) * 100;
    let ok = true;
    for (let p = base; p < base + PORTS_USED && ok; p++) ok = await portFree(p);
    if (ok) return base;
  }
  throw new Error('no free block of loopback ports for bulwark up');
}

/** The environment minus `BULWARK_*` and `OTEL_*`: the default mesh, nothing exported. */
function benchEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !k.startsWith('BULWARK_') && !k.startsWith('OTEL_'),
    ),
  );
}

/** A mesh started by `bulwark up`. */
export interface UpMesh {
  dir: string;
  stateDir: string;
  base: number;
  /** The `bulwark up` process. */
  launcherPid: number;
  /** Current pid of each supervised service, by name. */
  pids(): Record<string, number>;
  /** Exits (crashes or restarts) seen per service since start. */
  exits(): Record<string, number>;
  /** Stops the launcher (SIGINT, as Ctrl-C), kills whatever survives, removes the state. */
  stop(): Promise<{ launcherExit: number | string | null; leftovers: number[] }>;
}

/** True while `pid` runs a `bulwark` process (a reused pid belongs to someone else). */
function isBulwarkProcess(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('bulwark.js');
  } catch {
    return false;
  }
}

async function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return Promise.race([
    new Promise<boolean>((resolve) => child.once('exit', () => resolve(true))),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms).unref()),
  ]);
}

/**
 * Starts `bulwark up --state-dir <tmp> --port-base <free>` from the repository root (so it
 * reads `./bulwark.yaml`) and resolves once it prints its summary.
 */
export async function startUpMesh(options: {
  readyTimeoutMs: number;
  progress: (line: string) => void;
}): Promise<UpMesh> {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-bench-mesh-'));
  const stateDir = join(dir, 'state');
  const base = await freePortBase();
  const child = spawn(
    process.execPath,
    [BULWARK_BIN, 'up', '--state-dir', stateDir, '--port-base', String(base)],
    { cwd: ROOT, env: benchEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const pids: Record<string, number> = {};
  const exits: Record<string, number> = {};
  const everyPid = new Set<number>();
  let out = '';
  let errTail = '';
  let pending = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => {
    pending += c.toString();
    errTail = (errTail + c.toString()).slice(-4000);
    for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      const started = /^up: (\S+): started \(pid (\d+)\)/.exec(line);
      if (started) {
        pids[started[1]!] = Number(started[2]);
        everyPid.add(Number(started[2]));
      }
      const exited = /^up: (\S+): exited/.exec(line);
      if (exited) exits[exited[1]!] = (exits[exited[1]!] ?? 0) + 1;
      if (started || exited || /restarting|failed/.test(line)) options.progress(line);
    }
  });
  const exited = new Promise<number | string | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal)),
  );

  let stopping: ReturnType<UpMesh['stop']> | undefined;
  const stop: UpMesh['stop'] = () =>
    (stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      if (!(await waitExit(child, 30_000))) {
        child.kill('SIGKILL');
        await waitExit(child, 5_000);
      }
      const launcherExit = await exited;
      // Services exit with their parent; whatever still runs after a grace period is killed.
      const deadline = Date.now() + 10_000;
      let alive = [...everyPid].filter(isBulwarkProcess);
      while (alive.length && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        alive = alive.filter(isBulwarkProcess);
      }
      for (const pid of alive) process.kill(pid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      return { launcherExit, leftovers: alive };
    })());

  const deadline = Date.now() + options.readyTimeoutMs;
  while (!out.includes('Press Ctrl-C')) {
    const failed = child.exitCode !== null || child.signalCode !== null;
    if (failed || Date.now() > deadline) {
      await stop();
      throw new Error(
        `bulwark up ${failed ? `exited (${child.exitCode ?? child.signalCode})` : 'did not become ready'}:\n${errTail}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  if (!existsSync(join(stateDir, 'certs', 'ca.crt'))) {
    await stop();
    throw new Error('bulwark up is ready but wrote no mesh CA');
  }
  return {
    dir,
    stateDir,
    base,
    launcherPid: child.pid!,
    pids: () => ({ ...pids }),
    exits: () => ({ ...exits }),
    stop,
  };
}
