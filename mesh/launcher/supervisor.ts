import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

/** One supervised process. */
export interface ProcessSpec {
  /** Short unique name, used in logs (`audit`, `policy`, ...). */
  name: string;
  /** Executable; defaults to the running Node (`process.execPath`). */
  command?: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Resolves true once the process serves; polled until `readyTimeoutMs`. */
  ready?: () => Promise<boolean>;
}

/** What the supervisor reports; every event is also emitted by name. */
export type SupervisorEvent =
  | { type: 'started'; name: string; pid: number }
  | { type: 'ready'; name: string }
  | { type: 'exited'; name: string; code: number | null; signal: string | null }
  | { type: 'restarting'; name: string; attempt: number; delayMs: number }
  | { type: 'output'; name: string; stream: 'stdout' | 'stderr'; line: string };

export interface SupervisorOptions {
  specs: readonly ProcessSpec[];
  /** First restart delay; doubles per consecutive crash up to `maxBackoffMs`. Default 250 ms. */
  initialBackoffMs?: number;
  /** Default 10 s. */
  maxBackoffMs?: number;
  /** A process that stayed up this long resets its backoff. Default 30 s. */
  stableAfterMs?: number;
  /** How long to wait for `ready` at start. Default 60 s. */
  readyTimeoutMs?: number;
  /** SIGTERM, then SIGKILL after this grace. Default 10 s. */
  stopGraceMs?: number;
}

const defaults = {
  initialBackoffMs: 250,
  maxBackoffMs: 10_000,
  stableAfterMs: 30_000,
  readyTimeoutMs: 60_000,
  stopGraceMs: 10_000,
};

interface Slot {
  spec: ProcessSpec;
  child?: ChildProcess;
  startedAt: number;
  crashes: number;
  exited?: Promise<void>;
}

/**
 * Runs a set of processes in order, waits for each to be ready, restarts a crashed one with
 * exponential backoff, and stops them all in reverse order.
 *
 * @example
 * ```ts
 * const sup = createSupervisor({ specs: [{ name: 'audit', args: ['services/audit/main.ts'] }] });
 * sup.on('event', (e) => log.info(e));
 * await sup.start();
 * process.once('SIGINT', () => void sup.stop());
 * ```
 */
export function createSupervisor(options: SupervisorOptions): Supervisor {
  return new Supervisor(options);
}

export class Supervisor extends EventEmitter {
  readonly #options: typeof defaults & SupervisorOptions;
  readonly #slots: Slot[];
  #stopping = false;

  constructor(options: SupervisorOptions) {
    super();
    this.#options = { ...defaults, ...options };
    const names = new Set<string>();
    for (const spec of options.specs) {
      if (names.has(spec.name)) throw new TypeError(`specs: duplicate process name "${spec.name}"`);
      names.add(spec.name);
    }
    this.#slots = options.specs.map((spec) => ({ spec, startedAt: 0, crashes: 0 }));
  }

  /** Starts every process in order; each must be ready before the next starts. */
  async start(): Promise<void> {
    for (const slot of this.#slots) {
      // stop() during start: launch nothing more (it would outlive the supervisor).
      if (this.#stopping) return;
      this.#launch(slot);
      await this.#waitReady(slot);
    }
  }

  /** PIDs of the running processes, by name. */
  pids(): Record<string, number | undefined> {
    return Object.fromEntries(this.#slots.map((s) => [s.spec.name, s.child?.pid]));
  }

  /** Stops every process, last started first. */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const slot of [...this.#slots].reverse()) {
      const child = slot.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) continue;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), this.#options.stopGraceMs);
      await slot.exited;
      clearTimeout(timer);
    }
  }

  #emit(event: SupervisorEvent): void {
    this.emit('event', event);
    this.emit(event.type, event);
  }

  #launch(slot: Slot): void {
    const { spec } = slot;
    const child = spawn(spec.command ?? process.execPath, spec.args, {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    slot.child = child;
    slot.startedAt = Date.now();
    for (const stream of ['stdout', 'stderr'] as const) {
      let buffered = '';
      child[stream]?.setEncoding('utf8');
      child[stream]?.on('data', (chunk: string) => {
        buffered += chunk;
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          this.#emit({ type: 'output', name: spec.name, stream, line: buffered.slice(0, nl) });
          buffered = buffered.slice(nl + 1);
        }
      });
    }
    slot.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#emit({ type: 'exited', name: spec.name, code, signal });
        resolve();
        if (!this.#stopping) void this.#restart(slot);
      });
    });
    if (child.pid !== undefined) this.#emit({ type: 'started', name: spec.name, pid: child.pid });
  }

  async #restart(slot: Slot): Promise<void> {
    const upFor = Date.now() - slot.startedAt;
    slot.crashes = upFor >= this.#options.stableAfterMs ? 1 : slot.crashes + 1;
    const delayMs = Math.min(
      this.#options.maxBackoffMs,
      this.#options.initialBackoffMs * 2 ** (slot.crashes - 1),
    );
    this.#emit({ type: 'restarting', name: slot.spec.name, attempt: slot.crashes, delayMs });
    await sleep(delayMs);
    if (this.#stopping) return;
    this.#launch(slot);
    await this.#waitReady(slot).catch(() => {
      // A process that never gets ready after a restart exits or is retried by the next crash.
    });
  }

  async #waitReady(slot: Slot): Promise<void> {
    const ready = slot.spec.ready;
    if (!ready) return;
    const deadline = Date.now() + this.#options.readyTimeoutMs;
    while (Date.now() < deadline) {
      if (this.#stopping) return;
      if (await ready().catch(() => false)) {
        this.#emit({ type: 'ready', name: slot.spec.name });
        return;
      }
      await sleep(100);
    }
    throw new Error(
      `${slot.spec.name} did not become ready within ${this.#options.readyTimeoutMs} ms; ` +
        'see its log lines above',
    );
  }
}
