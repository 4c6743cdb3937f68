import { mkdtempSync, existsSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createSupervisor, type SupervisorEvent } from './supervisor.ts';

// A child that writes its pid to a file (its readiness signal) and then idles.
const idler = (file: string) => [
  '-e',
  `require('fs').writeFileSync(${JSON.stringify(file)}, String(process.pid)); setInterval(() => {}, 1000);`,
];

describe('supervisor', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'bulwark-sup-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('starts in order, restarts a killed process with backoff, and stops everything', async () => {
    const a = join(dir, 'a.pid');
    const b = join(dir, 'b.pid');
    const sup = createSupervisor({
      specs: [
        { name: 'a', args: idler(a), ready: async () => existsSync(a) },
        { name: 'b', args: idler(b), ready: async () => existsSync(b) },
      ],
      initialBackoffMs: 20,
    });
    const events: SupervisorEvent[] = [];
    sup.on('event', (e: SupervisorEvent) => events.push(e));
    await sup.start();
    const ready = events.filter((e) => e.type === 'ready').map((e) => e.name);
    expect(ready).toEqual(['a', 'b']);

    const firstPid = Number(readFileSync(a, 'utf8'));
    rmSync(a);
    process.kill(firstPid, 'SIGKILL');
    await once(sup, 'ready');
    const secondPid = Number(readFileSync(a, 'utf8'));
    expect(secondPid).not.toBe(firstPid);
    expect(events).toContainEqual({ type: 'restarting', name: 'a', attempt: 1, delayMs: 20 });

    const pids = Object.values(sup.pids());
    await sup.stop();
    for (const pid of pids) {
      expect(() => process.kill(pid!, 0)).toThrow();
    }
  });

  it('doubles the delay for a process that keeps crashing', async () => {
    const sup = createSupervisor({
      specs: [{ name: 'crash', args: ['-e', 'process.exit(3)'] }],
      initialBackoffMs: 10,
      maxBackoffMs: 40,
    });
    const delays: number[] = [];
    sup.on('restarting', (e: { delayMs: number }) => delays.push(e.delayMs));
    await sup.start();
    while (delays.length < 4) await once(sup, 'restarting');
    await sup.stop();
    expect(delays.slice(0, 4)).toEqual([10, 20, 40, 40]);
  });

  it('reports a process that never becomes ready', async () => {
    const sup = createSupervisor({
      specs: [{ name: 'slow', args: idler(join(dir, 'x')), ready: async () => false }],
      readyTimeoutMs: 300,
    });
    await expect(sup.start()).rejects.toThrow(/slow did not become ready within 300 ms/);
    await sup.stop();
  });

  it('starts nothing more once stop() is called during start-up', async () => {
    const b = join(dir, 'b.pid');
    const sup = createSupervisor({
      specs: [
        { name: 'a', args: idler(join(dir, 'a.pid')), ready: async () => false },
        { name: 'b', args: idler(b), ready: async () => existsSync(b) },
      ],
    });
    const started: string[] = [];
    sup.on('started', (e: { name: string }) => started.push(e.name));
    const first = once(sup, 'started');
    const starting = sup.start();
    await first;
    await sup.stop();
    await starting;
    expect(started).toEqual(['a']);
    expect(sup.pids().b).toBeUndefined();
  });

  it('refuses two processes with one name', () => {
    expect(() =>
      createSupervisor({
        specs: [
          { name: 'x', args: [] },
          { name: 'x', args: [] },
        ],
      }),
    ).toThrow(/duplicate process name "x"/);
  });
});
