/**
 * Resident memory of processes, from `/proc/<pid>/status` (Linux): `VmRSS` and its parts
 * `RssAnon` (heap, stacks: where a leak shows), `RssFile` (mapped files, e.g. SQLite pages) and
 * `RssShmem`.
 */
import { readFileSync } from 'node:fs';

/** Resident memory of one process, KiB. */
export interface RssSample {
  rss: number;
  anon?: number;
  file?: number;
  shmem?: number;
}

function field(status: string, name: string): number | undefined {
  const match = new RegExp(`^${name}:\\s+(\\d+)\\s+kB$`, 'm').exec(status);
  return match ? Number(match[1]) : undefined;
}

/** Resident memory of `pid`, or undefined when the process is gone. */
export function readRss(pid: number): RssSample | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const rss = field(status, 'VmRSS');
  if (rss === undefined) return undefined;
  const parts = { anon: field(status, 'RssAnon'), file: field(status, 'RssFile') };
  const shmem = field(status, 'RssShmem');
  return {
    rss,
    ...(parts.anon !== undefined ? { anon: parts.anon } : {}),
    ...(parts.file !== undefined ? { file: parts.file } : {}),
    ...(shmem !== undefined ? { shmem } : {}),
  };
}

/** Resident memory of each named process. */
export function sampleRss(pids: Record<string, number>): Record<string, RssSample | undefined> {
  return Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, readRss(pid)]));
}
