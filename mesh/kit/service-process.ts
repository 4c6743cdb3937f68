import type { ServerInterceptor } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { createMeshServer, type MeshServer } from './server.ts';
import type { ClientCertificateMode } from './peer-check.ts';
import type { TlsFiles } from './tls-files.ts';

/** What a service's `main.ts` hands over to run as a process (see {@link runServiceProcess}). */
export interface ServiceProcessOptions {
  /** The service's own entry of `bulwark.yaml` (resolved by `mesh/config`). */
  self: {
    host: string;
    port: number;
    metricsPort: number;
    allowedPeers: readonly string[];
    clientCertificate: ClientCertificateMode;
  };
  tls: TlsFiles;
  /** Overrides `self.port` (a `--port` flag). */
  port?: number;
  logger: Logger;
  telemetry: {
    serverInterceptor: ServerInterceptor;
    serveMetrics(options: { port: number; host?: string }): Promise<unknown>;
    shutdown(): Promise<void>;
  };
  /** Serve `/metrics` on `self.metricsPort` at this host; `false` serves none. */
  metricsHost: string | false;
  /** Adds the service's gRPC services to the server. */
  register(server: MeshServer): void;
  /** Releases the service's own resources after the server has drained. */
  close(): Promise<void>;
}

/**
 * The part every service process shares: a mesh server from the service's configuration with
 * telemetry, listening, `/metrics`, and on SIGTERM/SIGINT a drained shutdown (server, then the
 * service, then telemetry) before the process exits 0.
 *
 * @example
 * ```ts
 * const { address } = await runServiceProcess({ self, tls, logger, telemetry,
 *   metricsHost: config.telemetry.metricsHost, register: (s) => audit.addTo(s),
 *   close: () => audit.close() });
 * logger.info({ address }, 'audit service ready');
 * ```
 */
export async function runServiceProcess(
  options: ServiceProcessOptions,
): Promise<{ address: string; server: MeshServer }> {
  const { self, logger, telemetry } = options;
  const server = createMeshServer({
    tls: options.tls,
    allowedPeers: [...self.allowedPeers],
    clientCertificate: self.clientCertificate,
    host: self.host,
    port: options.port ?? self.port,
    logger,
    interceptors: [telemetry.serverInterceptor],
  });
  options.register(server);
  const { address } = await server.listen();
  if (options.metricsHost !== false) {
    await telemetry.serveMetrics({ port: self.metricsPort, host: options.metricsHost });
  }
  const stop = async (signal: string) => {
    logger.info({ signal }, 'shutting down');
    await server.shutdown();
    await options.close();
    await telemetry.shutdown();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  return { address, server };
}
