/**
 * Service processes for fault tests: spawned with Node 24 on a `.ts` entry point, output kept
 * for diagnostics, readiness read from the process's own output, and SIGKILL / SIGTERM on demand.
 * Every process started through a {@link ChildSet} is killed by `killAll()` (call it in
 * `afterAll`), so no process outlives its test even when an assertion fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root: entry points are given relative to it. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Keep at most this much output per process (the tail is what explains a failure). */
const MAX_OUTPUT = 256 * 1024;

export interface ServiceProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Everything written to stdout and stderr so far (the last 256 KiB). */
  output(): string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** `performance.now()` when the readiness match was seen. */
  readyAt: number;
  /** The readiness match (capture groups carry e.g. the bound address). */
  ready: RegExpExecArray;
  /** Sends SIGKILL and waits for the process to be gone. */
  kill9(): Promise<void>;
  /** Sends SIGTERM (SIGKILL after `graceMs`) and waits for the exit. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  name: string;
  /** Entry point relative to the repository root, e.g. `services/audit/main.ts`. */
  entry: string;
  args: string[];
  env?: Record<string, string>;
  /** Matched against the accumulated output; the process is ready when it matches. */
  ready: RegExp;
  /** How long to wait for readiness. Generous: this machine is small and shared. */
  readyTimeoutMs?: number;
}

/** A set of started processes that are all killed by {@link ChildSet.killAll}. */
export class ChildSet {
  private readonly children = new Set<ServiceProcess>();

  /** Starts a service and resolves once its output matches `ready`; rejects with the output. */
  async start(options: StartOptions): Promise<ServiceProcess> {
    const child = spawn(process.execPath, [options.entry, ...options.args], {
      cwd: REPO_ROOT,
      env: { ...process.env, OTEL_TRACES_EXPORTER: 'none', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const append = (chunk: Buffer) => {
      out += chunk.toString();
      if (out.length > MAX_OUTPUT * 2) out = out.slice(-MAX_OUTPUT);
    };
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    const exited = new Promise<number | string>((resolve) =>
      child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
    );
    const waitExit = async () => {
      if (child.exitCode === null && child.signalCode === null) await exited;
    };
    const proc: ServiceProcess = {
      name: options.name,
      child,
      output: () => out.slice(-MAX_OUTPUT),
      exited,
      readyAt: 0,
      // Replaced by the real match below, before the process is handed out.
      ready: /^/.exec('')!,
      async kill9() {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await waitExit();
      },
      async stop(graceMs = 5000) {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await waitExit();
        clearTimeout(timer);
      },
    };
    this.children.add(proc);
    void exited.then(() => this.children.delete(proc));
    const timeoutMs = options.readyTimeoutMs ?? 90_000;
    proc.ready = await new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const m = options.ready.exec(out);
        if (!m) return;
        cleanup();
        proc.readyAt = performance.now();
        resolve(m);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${options.name} not ready after ${timeoutMs} ms:\n${proc.output()}`));
      }, timeoutMs);
      const onExit = (code: number | string) => {
        cleanup();
        reject(
          new Error(`${options.name} exited (${code}) before it was ready:\n${proc.output()}`),
        );
      };
      const cleanup = () => {
        clearTimeout(timer);
        child.stdout!.off('data', check);
        child.stderr!.off('data', check);
      };
      child.stdout!.on('data', check);
      child.stderr!.on('data', check);
      void exited.then(onExit);
      check();
    }).catch(async (err: unknown) => {
      await proc.kill9();
      throw err;
    });
    return proc;
  }

  /** SIGKILLs every process still running and waits until they are gone. */
  async killAll(): Promise<void> {
    await Promise.all([...this.children].map((c) => c.kill9()));
    this.children.clear();
  }
}
