/**
 * Throwaway PostgreSQL clusters for tests: `initdb` on a fresh temp dir and `postgres` on a
 * free loopback port, run as the `postgres` system user (the binaries refuse to run as root).
 * Durability is switched off (`fsync`, `synchronous_commit`, `full_page_writes`) because a
 * test cluster is thrown away; benchmarks that measure durability pass `durable: true`.
 *
 * @example
 * ```ts
 * const pg = await startPostgres();
 * const client = new pg.Client({ connectionString: pg.url });
 * // ...
 * await pg.stop();
 * ```
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, chownSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface StartPostgresOptions {
  /** Keep fsync and synchronous commit on (for benchmarks of durable writes). Default false. */
  durable?: boolean;
  /** How long to wait for the server to accept connections. Default 30 000 ms. */
  startTimeoutMs?: number;
  /** Database created for the test (besides the default `postgres`). Default `bulwark`. */
  database?: string;
}

export interface PostgresInstance {
  /** `postgres://postgres@127.0.0.1:<port>/<database>` (trust authentication on loopback). */
  url: string;
  port: number;
  /** The data directory (removed by `stop`). */
  dataDir: string;
  /** Stops the server (fast shutdown, then SIGKILL) and removes the data directory. */
  stop(): Promise<void>;
}

interface SystemUser {
  uid: number;
  gid: number;
}

function postgresUser(): SystemUser | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('startPostgres: running as root but no `postgres` user exists');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function waitForReady(
  port: number,
  child: ChildProcess,
  timeoutMs: number,
  log: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`startPostgres: postgres exited early:\n${log()}`);
    }
    // The listener opens only after recovery finished, so a TCP connect means ready.
    if (await canConnect(port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`startPostgres: postgres not ready after ${timeoutMs} ms:\n${log()}`);
}

async function createDatabase(port: number, database: string, timeoutMs: number): Promise<void> {
  const { default: pg } = await import('pg');
  const deadline = Date.now() + timeoutMs;
  let client: InstanceType<typeof pg.Client>;
  // The port opens before recovery ends ("the database system is starting up"): retry.
  for (;;) {
    client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    try {
      await client.connect();
      break;
    } catch (err) {
      await client.end().catch(() => undefined);
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    await client.query(`CREATE DATABASE "${database.replaceAll('"', '""')}"`);
  } finally {
    await client.end();
  }
}

/** Starts a fresh PostgreSQL cluster; see the module comment. */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresInstance> {
  const { durable = false, startTimeoutMs = 30_000, database = 'bulwark' } = options;
  const user = postgresUser();
  const dataDir = mkdtempSync(join(tmpdir(), 'bulwark-pg-'));
  const cleanup = () => rmSync(dataDir, { recursive: true, force: true });
  if (user) chownSync(dataDir, user.uid, user.gid);
  const spawnIds = user ? { uid: user.uid, gid: user.gid } : {};
  const env = { ...process.env, LC_ALL: 'C', LANG: 'C' };
  try {
    execFileSync(
      'initdb',
      ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync'],
      { ...spawnIds, env, stdio: 'pipe', cwd: dataDir },
    );
  } catch (err) {
    cleanup();
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`startPostgres: initdb failed: ${stderr}`, { cause: err });
  }
  const settings = [
    "listen_addresses = '127.0.0.1'",
    "unix_socket_directories = ''",
    'max_connections = 100',
    'shared_buffers = 32MB',
    ...(durable ? [] : ['fsync = off', 'synchronous_commit = off', 'full_page_writes = off']),
  ];
  writeFileSync(join(dataDir, 'postgresql.auto.conf'), `${settings.join('\n')}\n`);
  if (user) chownSync(join(dataDir, 'postgresql.auto.conf'), user.uid, user.gid);

  // A port can be taken between the probe and the bind; retry a few times with new ports.
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    let output = '';
    const child = spawn('postgres', ['-D', dataDir, '-p', String(port)], {
      ...spawnIds,
      env,
      cwd: dataDir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      await waitForReady(port, child, startTimeoutMs, () => output);
      await createDatabase(port, database, startTimeoutMs);
    } catch (err) {
      child.kill('SIGKILL');
      await exited;
      if (attempt < 3 && /could not bind|Address already in use/.test(output)) continue;
      cleanup();
      throw err;
    }
    // If the test process ends without stop(), do not leave a server behind.
    const killOnExit = () => {
      child.kill('SIGKILL');
      cleanup();
    };
    process.once('exit', killOnExit);
    let stopped: Promise<void> | undefined;
    const stop = (): Promise<void> => {
      process.removeListener('exit', killOnExit);
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGINT'); // fast shutdown
          const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
          await exited;
          clearTimeout(timer);
        }
        cleanup();
      })();
      return stopped;
    };
    return {
      url: `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`,
      port,
      dataDir,
      stop,
    };
  }
}
