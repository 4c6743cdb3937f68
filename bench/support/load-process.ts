/**
 * The parent's side of the load generator (`mesh-load.ts`): starts it as a separate Node
 * process, runs one phase at a time, and bounds every wait so a stuck child cannot hang the
 * benchmark.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { LoadMessage, LoadPlan, PhaseResult, PhaseSpec } from './load-protocol.ts';

export interface LoadProcess {
  pid: number;
  /** `sub` of each identity's token. */
  subjects: string[];
  run(spec: PhaseSpec): Promise<PhaseResult>;
  /** Ends stdin, then kills the process if it has not exited within 5 s. */
  stop(): Promise<void>;
}

export async function startLoadProcess(
  plan: LoadPlan,
  readyTimeoutMs: number,
): Promise<LoadProcess> {
  const child = spawn(
    process.execPath,
    [join(import.meta.dirname, 'mesh-load.ts'), JSON.stringify(plan)],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, OTEL_SDK_DISABLED: 'true' },
    },
  );
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const waiting: ((m: LoadMessage | Error) => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let message: LoadMessage;
    try {
      message = JSON.parse(line) as LoadMessage;
    } catch {
      return;
    }
    waiting.shift()?.(message);
  });
  void exited.then(() => {
    for (const w of waiting.splice(0)) w(new Error(`load generator exited: ${stderr}`));
  });

  const next = (timeoutMs: number, what: string) =>
    new Promise<LoadMessage>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`load generator: no ${what} in time`)),
        timeoutMs,
      );
      waiting.push((m) => {
        clearTimeout(timer);
        if (m instanceof Error) reject(m);
        else if (m.type === 'error') reject(new Error(`load generator: ${m.message}`));
        else resolve(m);
      });
    });

  const stop = async () => {
    child.stdin!.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };

  const ready = await next(readyTimeoutMs, 'tokens').catch(async (err: Error) => {
    await stop();
    throw err;
  });
  if (ready.type !== 'ready') {
    await stop();
    throw new Error(`load generator: unexpected ${ready.type}`);
  }
  return {
    pid: child.pid!,
    subjects: ready.subjects,
    async run(spec) {
      const answer = next(spec.warmupMs + spec.durationMs + 60_000, `result of ${spec.name}`);
      child.stdin!.write(`${JSON.stringify(spec)}\n`);
      const m = await answer;
      if (m.type !== 'phase') throw new Error(`load generator: unexpected ${m.type}`);
      return m.result;
    },
    stop,
  };
}
