/**
 * `npm run bench` runs every benchmark area (`bench/<area>.ts`); `npm run bench -- <area>...`
 * runs the named ones. Each area module exports `run(): Promise<BenchReport>`. Reports are
 * printed and written as JSON to `bench/results/<area>-<timestamp>.json`.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** What an area's `run()` returns. */
export interface BenchReport {
  /** One line saying what was measured. */
  title: string;
  /** Human-readable result (a small table), printed as is. */
  text: string;
  /** Machine-readable result, written to the JSON file. */
  data: unknown;
}

const benchDir = dirname(fileURLToPath(import.meta.url));
const resultsDir = join(benchDir, 'results');

function availableAreas(): string[] {
  return readdirSync(benchDir)
    .filter(
      (file) =>
        file.endsWith('.ts') &&
        !file.startsWith('.') &&
        file !== 'run.ts' &&
        !file.endsWith('.test.ts'),
    )
    .map((file) => basename(file, '.ts'))
    .sort();
}

async function main(): Promise<number> {
  const areas = availableAreas();
  const requested = process.argv.slice(2).filter((arg) => !arg.startsWith('-'));
  const unknown = requested.filter((area) => !areas.includes(area));
  if (unknown.length) {
    process.stderr.write(
      `unknown benchmark area(s): ${unknown.join(', ')}; available: ${areas.join(', ')}\n`,
    );
    return 2;
  }
  mkdirSync(resultsDir, { recursive: true });
  for (const area of requested.length ? requested : areas) {
    const module = (await import(pathToFileURL(join(benchDir, `${area}.ts`)).href)) as {
      run?: () => Promise<BenchReport>;
    };
    if (typeof module.run !== 'function') {
      process.stderr.write(`bench/${area}.ts does not export run()\n`);
      return 1;
    }
    process.stderr.write(`== ${area}\n`);
    const startedAt = new Date();
    const report = await module.run();
    process.stdout.write(`\n${report.title}\n${report.text}\n`);
    const file = join(resultsDir, `${area}-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
    const machine = {
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      cpus: availableParallelism(),
      cpuModel: cpus()[0]?.model ?? 'unknown',
    };
    writeFileSync(
      file,
      JSON.stringify(
        {
          area,
          title: report.title,
          startedAt: startedAt.toISOString(),
          machine,
          data: report.data,
        },
        null,
        2,
      ) + '\n',
    );
    process.stderr.write(`results written to ${file}\n`);
  }
  return 0;
}

// Exit explicitly: an area that leaves a timer or socket behind must not hang the run.
process.exit(await main());
