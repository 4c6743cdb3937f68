import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { status } from '@grpc/grpc-js';
import { createTestPki, type TestPki } from '../mesh/ca/testing.ts';
import { readSpanFile, type SpanRecord } from '../mesh/telemetry/index.ts';

const NODE_SCRIPT = fileURLToPath(new URL('./support/trace-echo-node.ts', import.meta.url));

const children: ChildProcessWithoutNullStreams[] = [];
let pki: TestPki;
let dir: string;

beforeAll(async () => {
  pki = await createTestPki({ services: ['caller', 'alpha', 'beta'] });
  dir = mkdtempSync(join(tmpdir(), 'bulwark-trace-'));
});

afterAll(async () => {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.stdin.end();
          setTimeout(() => child.kill('SIGKILL'), 5000).unref();
        }),
    ),
  );
  await pki.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** Starts a node process and resolves with the first JSON line it prints. */
function startNode<T>(
  options: Record<string, unknown>,
): Promise<{ first: T; exit: Promise<number> }> {
  const child = spawn(process.execPath, [NODE_SCRIPT, JSON.stringify(options)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
  return new Promise((resolve, reject) => {
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const newline = stdout.indexOf('\n');
      if (newline >= 0) resolve({ first: JSON.parse(stdout.slice(0, newline)) as T, exit });
    });
    child.once('exit', (code) =>
      reject(new Error(`${String(options['name'])} exited (${code}) before answering:\n${stderr}`)),
    );
  });
}

function tls(name: string) {
  const { certFile, keyFile } = pki.services[name]!;
  return { certFile, keyFile, caFile: pki.caFile };
}

async function counter(url: string, code: string): Promise<number> {
  const body = await (await fetch(url)).text();
  const line = body
    .split('\n')
    .find(
      (l) =>
        l.startsWith('grpc_server_handled_total{') &&
        l.includes('grpc_service="bulwark.echo.v1.EchoService"') &&
        l.includes('grpc_method="Echo"') &&
        l.includes(`grpc_code="${code}"`),
    );
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('one trace across three processes over mTLS', () => {
  it('links client → A → B in one trace and moves the /metrics counters', async () => {
    const traceFile = join(dir, 'spans.jsonl');
    const ids = {
      caller: pki.services['caller']!.spiffeId,
      alpha: pki.services['alpha']!.spiffeId,
      beta: pki.services['beta']!.spiffeId,
    };
    const b = await startNode<{ port: number; metricsUrl: string }>({
      role: 'server',
      name: 'beta',
      tls: tls('beta'),
      allowedPeers: [ids.alpha],
      traceFile,
    });
    const a = await startNode<{ port: number; metricsUrl: string }>({
      role: 'server',
      name: 'alpha',
      tls: tls('alpha'),
      allowedPeers: [ids.caller],
      traceFile,
      forwardServer: ids.beta,
    });
    expect(await counter(a.first.metricsUrl, 'OK')).toBe(0);

    const client = await startNode<{
      ok: boolean;
      response?: { message: string; servers: string[] };
    }>({
      role: 'client',
      name: 'caller',
      tls: tls('caller'),
      traceFile,
      address: `127.0.0.1:${a.first.port}`,
      expectedServer: ids.alpha,
      request: { message: 'hello', forwardTo: `127.0.0.1:${b.first.port}` },
    });
    expect(client.first).toEqual({
      ok: true,
      response: { message: 'hello', servers: [ids.alpha, ids.beta] },
    });
    expect(await client.exit).toBe(0);

    const spans = readSpanFile(traceFile).filter(
      (s) => s.name === 'bulwark.echo.v1.EchoService/Echo',
    );
    const find = (service: string, kind: SpanRecord['kind']) => {
      const found = spans.filter((s) => s.service === service && s.kind === kind);
      expect(found).toHaveLength(1);
      return found[0]!;
    };
    const clientSpan = find('caller', 'CLIENT');
    const aServer = find('alpha', 'SERVER');
    const aClient = find('alpha', 'CLIENT');
    const bServer = find('beta', 'SERVER');
    expect(spans).toHaveLength(4);
    // One trace id across the three processes...
    expect(new Set(spans.map((s) => s.traceId)).size).toBe(1);
    expect(clientSpan.traceId).toMatch(/^[0-9a-f]{32}$/);
    // ...and each hop is the child of the one before.
    expect(clientSpan.parentSpanId).toBeUndefined();
    expect(aServer.parentSpanId).toBe(clientSpan.spanId);
    expect(aClient.parentSpanId).toBe(aServer.spanId);
    expect(bServer.parentSpanId).toBe(aClient.spanId);
    expect(bServer.attributes).toMatchObject({
      'rpc.system': 'grpc',
      'rpc.service': 'bulwark.echo.v1.EchoService',
      'rpc.method': 'Echo',
      'rpc.grpc.status_code': status.OK,
    });

    expect(await counter(a.first.metricsUrl, 'OK')).toBe(1);
    expect(await counter(b.first.metricsUrl, 'OK')).toBe(1);
  });

  it('traces and counts a call the peer allow-list refuses', async () => {
    const traceFile = join(dir, 'refused.jsonl');
    const b = await startNode<{ port: number; metricsUrl: string }>({
      role: 'server',
      name: 'beta',
      tls: tls('beta'),
      allowedPeers: [pki.services['alpha']!.spiffeId],
      traceFile,
    });
    // `caller` is not on beta's allow-list.
    const client = await startNode<{ ok: boolean; code?: number }>({
      role: 'client',
      name: 'caller',
      tls: tls('caller'),
      traceFile,
      address: `127.0.0.1:${b.first.port}`,
      expectedServer: pki.services['beta']!.spiffeId,
      request: { message: 'let me in', forwardTo: '' },
    });
    expect(client.first).toEqual({ ok: false, code: status.UNAUTHENTICATED });
    expect(await counter(b.first.metricsUrl, 'Unauthenticated')).toBe(1);
    expect(await counter(b.first.metricsUrl, 'OK')).toBe(0);
    await client.exit;
    const spans = readSpanFile(traceFile);
    const server = spans.find((s) => s.service === 'beta' && s.kind === 'SERVER');
    const caller = spans.find((s) => s.service === 'caller' && s.kind === 'CLIENT');
    expect(server?.attributes['rpc.grpc.status_code']).toBe(status.UNAUTHENTICATED);
    expect(server?.traceId).toBe(caller?.traceId);
    expect(caller?.status.code).toBe('ERROR');
  });
});
