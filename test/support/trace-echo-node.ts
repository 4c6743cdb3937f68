/**
 * One process of the cross-process trace test: an echo server (that can relay to another echo
 * server) or a one-shot echo client, each on the mesh kit with telemetry writing spans to a
 * shared JSON-lines file. Run as `node trace-echo-node.ts '<json options>'`.
 *
 * A server prints one line `{"port":..,"metricsUrl":".."}` when ready and exits cleanly when
 * its stdin closes (so it never outlives the test) or on SIGTERM. A client prints
 * `{"ok":true,"response":{..}}` or `{"ok":false,"code":..}` and exits.
 */
import type { ServiceError } from '@grpc/grpc-js';
import { EchoServiceClient, EchoServiceService } from '../../gen/bulwark/echo/v1/echo.ts';
import type { EchoRequest, EchoResponse } from '../../gen/bulwark/echo/v1/echo.ts';
import {
  createMeshClient,
  createMeshServer,
  unaryHandler,
  type TlsFiles,
} from '../../mesh/kit/index.ts';
import { createLogger, createTelemetry } from '../../mesh/telemetry/index.ts';

interface ServerRole {
  role: 'server';
  name: string;
  tls: TlsFiles;
  allowedPeers: string[];
  traceFile: string;
  /** SPIFFE ID the relay target must present. */
  forwardServer?: string;
}

interface ClientRole {
  role: 'client';
  name: string;
  tls: TlsFiles;
  traceFile: string;
  address: string;
  expectedServer: string;
  request: EchoRequest;
}

const options = JSON.parse(process.argv[2] ?? '{}') as ServerRole | ClientRole;
const logger = createLogger({ service: options.name, level: 'warn', destination: process.stderr });
const telemetry = createTelemetry({
  serviceName: options.name,
  traceFile: options.traceFile,
  traceFileMode: 'simple',
  processMetrics: false,
  env: {},
});

function call(client: EchoServiceClient, request: EchoRequest): Promise<EchoResponse> {
  return new Promise((resolve, reject) =>
    client.echo(request, (err: ServiceError | null, response: EchoResponse) =>
      err ? reject(err) : resolve(response),
    ),
  );
}

async function runServer(role: ServerRole): Promise<void> {
  const relays = new Map<string, EchoServiceClient>();
  const relay = (address: string) => {
    let client = relays.get(address);
    if (!client) {
      client = createMeshClient(EchoServiceClient, {
        address,
        tls: role.tls,
        expectedServer: role.forwardServer ?? '',
        logger,
        interceptors: [telemetry.clientInterceptor],
      });
      relays.set(address, client);
    }
    return client;
  };
  const server = createMeshServer({
    tls: role.tls,
    allowedPeers: role.allowedPeers,
    logger,
    interceptors: [telemetry.serverInterceptor],
  });
  server.addService(EchoServiceService, {
    echo: unaryHandler<EchoRequest, EchoResponse>(
      async (incoming) => {
        const { message, forwardTo } = incoming.request;
        if (!forwardTo) return { message, servers: [server.spiffeId] };
        const reply = await call(relay(forwardTo), { message, forwardTo: '' });
        return { message: reply.message, servers: [server.spiffeId, ...reply.servers] };
      },
      { logger },
    ),
  });
  const { port } = await server.listen();
  const metrics = await telemetry.serveMetrics({ port: 0 });
  process.stdout.write(JSON.stringify({ port, metricsUrl: metrics.url }) + '\n');

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    for (const client of relays.values()) client.close();
    await server.shutdown(1000);
    await telemetry.shutdown();
    process.exit(0);
  };
  process.stdin.on('end', () => void stop());
  process.stdin.on('close', () => void stop());
  process.stdin.resume();
  process.on('SIGTERM', () => void stop());
}

async function runClient(role: ClientRole): Promise<void> {
  const client = createMeshClient(EchoServiceClient, {
    address: role.address,
    tls: role.tls,
    expectedServer: role.expectedServer,
    logger,
    interceptors: [telemetry.clientInterceptor],
  });
  try {
    const response = await call(client, role.request);
    process.stdout.write(JSON.stringify({ ok: true, response }) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({ ok: false, code: (err as ServiceError).code }) + '\n');
  } finally {
    client.close();
    await telemetry.shutdown();
  }
}

if (options.role === 'server') await runServer(options);
else await runClient(options);
