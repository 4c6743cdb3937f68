/**
 * CPU time of other processes, for benchmarks that report CPU per request besides wall-clock
 * figures (on a shared 2-core machine, CPU per request is the steadier measure).
 */
import { readFileSync } from 'node:fs';

/** Linux's USER_HZ: the unit of the times in `/proc/<pid>/stat`. */
const CLOCK_TICKS = 100;

/**
 * CPU seconds (user + system, all threads) a process has used so far, from `/proc/<pid>/stat`.
 *
 * @example
 * ```ts
 * const before = processCpuSeconds(child.pid!);
 * // ... load ...
 * const usPerRequest = ((processCpuSeconds(child.pid!) - before) * 1e6) / requests;
 * ```
 */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The fields after the parenthesised command name; utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** CPU seconds this process has used so far (user + system). */
export function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}
