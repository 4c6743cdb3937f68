import { createServer as createTlsServer, createSecureContext, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import {
  Server,
  ServerCredentials,
  type ServerInterceptor,
  type ServerOptions,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { spiffeIdOf } from '../ca/index.ts';
import { compileAllowList, type PeerAllowList } from './allow-list.ts';
import { MESH_GRPC_OPTIONS } from './grpc-defaults.ts';
import { createHealthService, type MeshHealth } from './health.ts';
import { createMeshCallInterceptor } from './call-interceptor.ts';
import { callObserverOf } from './call-observer.ts';
import { trackInFlightCalls, type InFlightCalls } from './in-flight.ts';
import { connectionPeerOf, type ConnectionPeer } from './peer-identity.ts';
import { MeshError } from './mesh-error.ts';
import { refuseUndecodable } from './undecodable.ts';
import {
  createPeerCheckInterceptor,
  createPeerGate,
  type ClientCertificateMode,
  type PeerGate,
} from './peer-check.ts';
import {
  describeAuthorizationError,
  describeHandshakeError,
  presentedIdentities,
} from './tls-refusal.ts';
import { readTlsFilesSync, watchTlsFiles, type TlsFiles, type TlsMaterial } from './tls-files.ts';

/** Options of {@link createMeshServer}. */
export interface MeshServerOptions {
  /** This server's certificate, key and trust bundle (reloaded when they change). */
  tls: TlsFiles;
  /**
   * Peer SPIFFE IDs that may call (checked on every call). Besides them, the server's own
   * SPIFFE ID may call `grpc.health.v1.Health/Check` and nothing else (container probes,
   * see `probeHealth`).
   */
  allowedPeers: PeerAllowList;
  /**
   * `'required'` (default): every caller needs a certificate from the mesh CA.
   * `'optional'`: callers without a certificate get through with no SPIFFE ID and the
   * service decides (the public inference endpoint: TLS + bearer token). A presented
   * certificate must still verify and be allowed.
   */
  clientCertificate?: ClientCertificateMode;
  /** Listen host. Default `127.0.0.1`. */
  host?: string;
  /** Listen port; 0 (default) picks a free one, read it back from `listen()`. */
  port?: number;
  /** Logger for refusals, reloads and shutdown. Default: pino at `info` to stdout. */
  logger?: Logger;
  /**
   * Extra server interceptors (telemetry). They run outside the peer check, so they also
   * see refused calls and their `UNAUTHENTICATED` status.
   */
  interceptors?: ServerInterceptor[];
  /** How often certificate files are checked for changes. Default 5000 ms. */
  reloadIntervalMs?: number;
  /** Default grace period of `shutdown()`. Default 10000 ms. */
  shutdownGraceMs?: number;
  /** TLS handshake timeout. Default 10000 ms. */
  handshakeTimeoutMs?: number;
  /** Extra grpc-js server options (message sizes, keepalive). */
  grpcOptions?: ServerOptions;
}

/** A mesh gRPC server: mTLS, peer allow-list, health, reload and graceful shutdown. */
export interface MeshServer {
  /** The underlying grpc-js server (do not bind it yourself: use `listen()`). */
  readonly grpcServer: Server;
  /** The `grpc.health.v1` service, already registered; the server itself is `''`. */
  readonly health: MeshHealth;
  /** SPIFFE ID in this server's current certificate. */
  readonly spiffeId: string;
  /**
   * Registers a service and marks it SERVING in the health service (under its full name,
   * e.g. `bulwark.audit.v1.AuditService`).
   */
  addService(definition: ServiceDefinition, implementation: UntypedServiceImplementation): void;
  /** Starts listening; resolves to the bound port and `host:port` address. */
  listen(): Promise<{ port: number; address: string }>;
  /** Re-reads the certificate files now (they are also polled). */
  reloadCertificates(): void;
  /**
   * Stops accepting connections, marks everything NOT_SERVING, lets in-flight calls finish
   * for `graceMs`, then cancels what is left.
   */
  shutdown(graceMs?: number): Promise<void>;
}

/** The one method a server's own SPIFFE ID may call on it (probes; see `health-probe.ts`). */
export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';

function serviceNameOf(definition: ServiceDefinition): string {
  const first = Object.values(definition)[0];
  // Paths look like /bulwark.audit.v1.AuditService/Append.
  return first?.path.split('/')[1] ?? '';
}

/**
 * Creates a mesh gRPC server. TLS is terminated by the kit (so every refused handshake is
 * logged with its reason) and connections are handed to grpc-js; the peer's SPIFFE ID is
 * checked against `allowedPeers` on every call.
 *
 * @example
 * ```ts
 * const server = createMeshServer({
 *   tls: { certFile: 'certs/audit.crt', keyFile: 'certs/audit.key', caFile: 'certs/ca.crt' },
 *   allowedPeers: ['spiffe://bulwark.local/svc/inference', 'spiffe://bulwark.local/svc/policy'],
 *   logger,
 * });
 * server.addService(AuditServiceService, impl);
 * const { port } = await server.listen();
 * // ...
 * await server.shutdown();
 * ```
 */
export function createMeshServer(options: MeshServerOptions): MeshServer {
  const config = {
    clientCertificate: 'required' as ClientCertificateMode,
    host: '127.0.0.1',
    port: 0,
    reloadIntervalMs: 5000,
    shutdownGraceMs: 10_000,
    handshakeTimeoutMs: 10_000,
    interceptors: [] as ServerInterceptor[],
    grpcOptions: {} as ServerOptions,
    ...options,
  };
  if (config.clientCertificate !== 'required' && config.clientCertificate !== 'optional') {
    throw new MeshError(
      'ERR_MESH_INVALID_OPTION',
      'clientCertificate must be "required" or "optional"',
    );
  }
  const logger = (options.logger ?? pino()).child({ component: 'mesh-server' });
  const isAllowed = compileAllowList(config.allowedPeers);
  let material = readTlsFilesSync(config.tls);
  let spiffeId = ownIdentity(material);

  // What each connection's handshake established, so calls need not re-read the certificate.
  const connections = new Map<string, ConnectionPeer>();
  const health = createHealthService({ '': 'SERVING' });
  const inFlight = trackInFlightCalls();
  const gate = createPeerGate(
    isAllowed,
    config.clientCertificate,
    logger,
    (call) => {
      const info = call.getConnectionInfo();
      return connections.get(connectionKey(info.remoteAddress, info.remotePort, info.localPort));
    },
    // Container probes run beside the service with its own certificate: that identity may ask
    // Health/Check and nothing else. Whoever holds the key can already be the service.
    (peerId, method) => method === HEALTH_CHECK_PATH && peerId === spiffeId,
  );
  const grpcServer = new Server({
    ...MESH_GRPC_OPTIONS,
    ...config.grpcOptions,
    interceptors: serverInterceptors(config.interceptors, inFlight, gate),
  });
  grpcServer.addService(health.definition, health.implementation);
  // TLS is already terminated below; grpc-js speaks HTTP/2 over the decrypted socket.
  const injector = grpcServer.createConnectionInjector(ServerCredentials.createInsecure());

  const tlsServer = createTlsServer({
    ...contextOptions(material),
    requestCert: true,
    // Verification still runs; the verdict is read in 'secureConnection' so it can be logged.
    rejectUnauthorized: false,
    ALPNProtocols: ['h2'],
    handshakeTimeout: config.handshakeTimeoutMs,
  });
  const sockets = new Set<TLSSocket>();
  let onAllClosed: (() => void) | undefined;
  const allSocketsClosed = () =>
    sockets.size === 0
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          onAllClosed = resolve;
        });
  tlsServer.on('secureConnection', (socket: TLSSocket) => {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    if (!socket.authorized) {
      const presented = socket.getPeerCertificate();
      const hasCert = Boolean(presented?.raw);
      if (hasCert || config.clientCertificate === 'required') {
        const reason = hasCert
          ? describeAuthorizationError(socket.authorizationError)
          : 'no client certificate';
        logger.warn(
          {
            event: 'mesh.tls.refused',
            reason,
            code: hasCert ? String(socket.authorizationError) : 'NO_CERTIFICATE',
            peer,
            presented: presentedIdentities(presented),
          },
          `refused connection from ${peer}: ${reason}`,
        );
        socket.destroy();
        return;
      }
    }
    const key = connectionKey(socket.remoteAddress, socket.remotePort, socket.localPort);
    const connectionPeer = connectionPeerOf(
      socket.authorized ? socket.getPeerCertificate() : undefined,
    );
    // Same spelling as grpc-js's `call.getPeer()` for this socket.
    if (socket.remoteAddress) {
      connectionPeer.address = socket.remotePort ? peer : socket.remoteAddress;
    }
    connections.set(key, connectionPeer);
    sockets.add(socket);
    socket.on('close', () => {
      connections.delete(key);
      sockets.delete(socket);
      if (sockets.size === 0) onAllClosed?.();
    });
    socket.on('error', (err) => logger.debug({ err, peer }, 'connection error'));
    injector.injectConnection(socket);
  });
  tlsServer.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    const reason = describeHandshakeError(err);
    logger.warn(
      { event: 'mesh.tls.refused', reason, code: err.code, peer },
      `refused connection from ${peer}: ${reason}`,
    );
  });

  function apply(next: TlsMaterial): void {
    // Both calls throw on a key that does not match its certificate: keep the old context.
    const nextId = ownIdentity(next);
    createSecureContext(contextOptions(next));
    tlsServer.setSecureContext(contextOptions(next));
    if (nextId !== spiffeId) {
      logger.warn({ from: spiffeId, to: nextId }, 'server certificate now names another SPIFFE ID');
    }
    material = next;
    spiffeId = nextId;
    logger.info({ event: 'mesh.tls.reloaded', spiffeId }, 'certificates reloaded');
  }
  const onReloadError = (err: unknown) =>
    logger.warn({ err: safeError(err) }, 'certificate files changed but cannot be used yet');
  let watch = { stop: () => {} };
  let listening = false;
  let shuttingDown: Promise<void> | undefined;

  return {
    grpcServer,
    health,
    get spiffeId() {
      return spiffeId;
    },
    addService(definition, implementation) {
      grpcServer.addService(...refuseUndecodable(definition, implementation));
      health.setStatus(serviceNameOf(definition), 'SERVING');
    },
    listen() {
      if (listening) {
        return Promise.reject(
          new MeshError('ERR_MESH_INVALID_OPTION', 'server is already listening'),
        );
      }
      listening = true;
      return new Promise((resolve, reject) => {
        tlsServer.once('error', reject);
        tlsServer.listen(config.port, config.host, () => {
          tlsServer.off('error', reject);
          watch = watchTlsFiles(
            config.tls,
            material,
            config.reloadIntervalMs,
            apply,
            onReloadError,
          );
          const { port } = tlsServer.address() as AddressInfo;
          const host = config.host.includes(':') ? `[${config.host}]` : config.host;
          logger.info({ event: 'mesh.server.listening', port, spiffeId }, 'listening');
          resolve({ port, address: `${host}:${port}` });
        });
      });
    },
    reloadCertificates() {
      try {
        const next = readTlsFilesSync(config.tls);
        apply(next);
      } catch (err) {
        onReloadError(err);
        throw err;
      }
    },
    shutdown(graceMs = config.shutdownGraceMs) {
      shuttingDown ??= new Promise<void>((resolve) => {
        let stopped = false;
        const stop = (forced: boolean) => {
          if (stopped) return;
          stopped = true;
          clearTimeout(force);
          if (forced) logger.warn({ graceMs }, 'grace period over: cancelling remaining calls');
          grpcServer.forceShutdown();
          for (const socket of sockets) socket.destroy();
          logger.info({ event: 'mesh.server.stopped', forced }, 'server stopped');
          resolve();
        };
        const force = setTimeout(() => stop(true), graceMs);
        force.unref();
        watch.stop();
        health.shutdown();
        tlsServer.close();
        // GOAWAY to every client: no new calls, running ones continue. The tryShutdown
        // callback alone is not a drain signal for injected connections, so the kit counts
        // its calls itself.
        grpcServer.tryShutdown(() => {});
        void inFlight
          .idle()
          // Let the last statuses reach the wire: clients close their connections on GOAWAY
          // once their calls are done.
          .then(() => Promise.race([allSocketsClosed(), delay(Math.min(graceMs, 1000))]))
          .then(() => stop(false));
      });
      return shuttingDown;
    },
  };
}

/**
 * The server's interceptors. grpc-js nests them so that later ones see a call's status first:
 * the peer check comes last so extra (telemetry) interceptors still see its refusals, and the
 * in-flight counter first so it sees every call end. When the extra interceptors are just an
 * observer (telemetry) or none, all of it is one interceptor: each grpc-js layer costs every
 * call a few allocations and hops.
 */
function serverInterceptors(
  extra: ServerInterceptor[],
  inFlight: InFlightCalls,
  gate: PeerGate,
): ServerInterceptor[] {
  const observer = extra.length === 1 ? callObserverOf(extra[0]!) : undefined;
  if (extra.length === 0 || observer) {
    return [createMeshCallInterceptor(inFlight, gate, observer)];
  }
  return [inFlight.interceptor, ...extra, createPeerCheckInterceptor(gate)];
}

const connectionKey = (address?: string, port?: number, localPort?: number) =>
  `${address ?? ''}|${port ?? ''}|${localPort ?? ''}`;

const delay = (ms: number) =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms).unref();
  });

function contextOptions(material: TlsMaterial) {
  return {
    cert: material.cert,
    key: material.key,
    ca: material.ca,
    minVersion: 'TLSv1.2' as const,
  };
}

function ownIdentity(material: TlsMaterial): string {
  try {
    return spiffeIdOf(material.cert.toString('utf8'));
  } catch (err) {
    throw new MeshError(
      'ERR_MESH_CERTIFICATE_UNREADABLE',
      'server certificate is not a valid X.509-SVID',
      { cause: err },
    );
  }
}

// Node's TLS errors never include key bytes, but keep only message and code to be sure.
function safeError(err: unknown): { message: string; code?: string } {
  const e = err as { message?: string; code?: string };
  return { message: String(e?.message ?? err), ...(e?.code ? { code: e.code } : {}) };
}
