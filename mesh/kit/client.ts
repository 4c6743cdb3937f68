import type { PeerCertificate } from 'node:tls';
import {
  Client,
  credentials as grpcCredentials,
  experimental,
  InterceptingCall,
  Metadata,
  status,
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type Interceptor,
  type InterceptorProvider,
  type ServiceDefinition,
  type ServiceError,
} from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { spiffeIdOf } from '../ca/index.ts';
import { clientCallObserverOf, type ClientCallObserver } from './call-observer.ts';
import { MESH_GRPC_OPTIONS } from './grpc-defaults.ts';
import { MeshError } from './mesh-error.ts';
import { readTlsFilesSync, type TlsFiles } from './tls-files.ts';

/** Certificate material given directly as PEM instead of files (not reloaded). */
export interface TlsPem {
  certPem: string | Buffer;
  keyPem: string | Buffer;
  caPem: string | Buffer;
}

/** Options of {@link createMeshCredentials}. */
export interface MeshCredentialsOptions {
  /** Client certificate, key and trust bundle: files (reloaded when they change) or PEM. */
  tls: TlsFiles | TlsPem;
  /**
   * SPIFFE ID(s) the server must present, e.g. `spiffe://bulwark.local/svc/audit`. The
   * server certificate's single URI SAN is checked instead of the host name, so a server
   * holding another service's valid certificate is refused.
   */
  expectedServer: string | readonly string[];
  /** Logger for refused servers. Default: pino at `info` to stdout. */
  logger?: Logger;
  /** How often certificate files are re-read. Default 5000 ms. */
  reloadIntervalMs?: number;
}

/** Options of {@link createMeshClient}. */
export interface MeshClientOptions extends MeshCredentialsOptions {
  /** `host:port` of the server. */
  address: string;
  /** Deadline applied to every call that does not set one. Default 10000 ms. */
  defaultDeadlineMs?: number;
  /**
   * Extra client interceptors (telemetry), run after the deadline is set. A single interceptor
   * that carries a client call observer (the telemetry one) traces unary calls without an
   * interceptor layer; see {@link createMeshClient}.
   */
  interceptors?: Interceptor[];
  /** Extra grpc-js channel options. */
  channelOptions?: ChannelOptions;
}

/** A generated grpc-js client class (ts-proto `outputServices=grpc-js` or proto-loader). */
export type GrpcClientConstructor<C extends Client> = new (
  address: string,
  credentials: ChannelCredentials,
  options?: ChannelOptions & { interceptors?: Interceptor[] },
) => C;

/**
 * An interceptor that gives every call without a deadline one `ms` from now, so no call can
 * hang forever on a stuck peer.
 */
export function defaultDeadlineInterceptor(ms: number): Interceptor {
  return withDefaultDeadline(ms, (options, nextCall) => new InterceptingCall(nextCall(options)));
}

/**
 * `interceptor` with the default deadline applied to its call options first: one grpc-js layer
 * instead of a deadline layer plus the interceptor's (each layer costs every call a few
 * allocations and hops). Calls that already carry a deadline pass through untouched.
 */
function withDefaultDeadline(ms: number, interceptor: Interceptor): Interceptor {
  return (options, nextCall) =>
    interceptor(
      options.deadline === undefined || options.deadline === Infinity
        ? { ...options, deadline: new Date(Date.now() + ms) }
        : options,
      nextCall,
    );
}

/**
 * Channel credentials for calling a mesh server: client certificate, mesh trust bundle and
 * a server identity check on the SPIFFE ID (not the host name).
 */
export function createMeshCredentials(options: MeshCredentialsOptions): ChannelCredentials {
  const logger = (options.logger ?? pino()).child({ component: 'mesh-client' });
  const expected = new Set(
    typeof options.expectedServer === 'string' ? [options.expectedServer] : options.expectedServer,
  );
  if (expected.size === 0 || [...expected].some((id) => !id.startsWith('spiffe://'))) {
    throw new MeshError('ERR_MESH_INVALID_OPTION', 'expectedServer must list SPIFFE IDs');
  }
  const checkServerIdentity = (host: string, cert: PeerCertificate): Error | undefined => {
    let id: string;
    try {
      id = spiffeIdOf(cert);
    } catch (err) {
      logger.warn(
        { event: 'mesh.server.refused', host, reason: (err as Error).message },
        `refused server ${host}: its certificate is not an X.509-SVID`,
      );
      return new MeshError(
        'ERR_MESH_SERVER_IDENTITY_MISMATCH',
        'server certificate is not an X.509-SVID',
      );
    }
    if (!expected.has(id)) {
      const reason = `server presented ${id}, expected ${[...expected].join(' or ')}`;
      logger.warn(
        { event: 'mesh.server.refused', host, spiffeId: id, reason },
        `refused server ${host}: ${reason}`,
      );
      return new MeshError('ERR_MESH_SERVER_IDENTITY_MISMATCH', reason);
    }
    return undefined;
  };
  const tls = options.tls;
  if ('certFile' in tls) {
    // Read once now so a missing file fails here with a clear message, then watch.
    readTlsFilesSync(tls);
    const provider = new experimental.FileWatcherCertificateProvider({
      certificateFile: tls.certFile,
      privateKeyFile: tls.keyFile,
      caCertificateFile: tls.caFile,
      refreshIntervalMs: options.reloadIntervalMs ?? 5000,
    });
    return experimental.createCertificateProviderChannelCredentials(provider, provider, {
      checkServerIdentity,
    });
  }
  return grpcCredentials.createSsl(
    Buffer.from(tls.caPem),
    Buffer.from(tls.keyPem),
    Buffer.from(tls.certPem),
    { checkServerIdentity },
  );
}

/**
 * Creates a client of a generated service class that calls a mesh server over mTLS, checks
 * the server's SPIFFE ID and gives every call a default deadline.
 *
 * Each grpc-js interceptor layer costs every call several allocations and hops. So when the
 * extra interceptors are none, or only one that carries a client call observer (telemetry),
 * unary calls get their deadline and observer where they start, with no interceptor layer;
 * streaming calls get them from one interceptor. With any other interceptors, every call goes
 * through the deadline and then those interceptors.
 *
 * @example
 * ```ts
 * const audit = createMeshClient(AuditServiceClient, {
 *   address: 'localhost:7443',
 *   tls: { certFile: 'certs/inference.crt', keyFile: 'certs/inference.key', caFile: 'certs/ca.crt' },
 *   expectedServer: 'spiffe://bulwark.local/svc/audit',
 *   logger,
 * });
 * audit.append(request, (err, response) => { ... });
 * audit.close();
 * ```
 */
export function createMeshClient<C extends Client>(
  ClientClass: GrpcClientConstructor<C>,
  options: MeshClientOptions,
): C {
  const credentials = createMeshCredentials(options);
  // TLS forbids an IP address as SNI server name (Node warns); the identity check does not
  // use the name, so loopback IP targets present "localhost", which mesh certificates carry.
  const loopback = /^(127\.\d+\.\d+\.\d+|\[::1\]):\d+$/.test(options.address);
  const channelOptions: ChannelOptions = {
    ...MESH_GRPC_OPTIONS,
    ...(loopback ? { 'grpc.ssl_target_name_override': 'localhost' } : {}),
    ...options.channelOptions,
  };
  const deadlineMs = options.defaultDeadlineMs ?? 10_000;
  const extra = options.interceptors ?? [];
  const observer = extra.length === 1 ? clientCallObserverOf(extra[0]!) : undefined;
  // Generated classes (grpc-js `makeGenericClientConstructor`, as ts-proto and proto-loader
  // use it) describe their methods; others get every call through interceptors.
  const service = (ClientClass as { service?: ServiceDefinition }).service;
  if ((extra.length > 0 && !observer) || !service) {
    return new ClientClass(options.address, credentials, {
      ...channelOptions,
      interceptors: clientInterceptors(deadlineMs, extra),
    });
  }
  // Streaming methods only: unary calls are handled by `observeUnaryCalls`. grpc-js drops the
  // providers' empty answers, so a unary call runs with no interceptor at all.
  const streaming = clientInterceptors(deadlineMs, extra)[0]!;
  const provider: InterceptorProvider = (method) =>
    method.requestStream || method.responseStream ? streaming : (undefined as never);
  const client = new ClientClass(options.address, credentials, {
    ...channelOptions,
    interceptor_providers: [provider],
  });
  observeUnaryCalls(client, service, deadlineMs, observer);
  return client;
}

type UnaryCallback = (err: ServiceError | null, value?: unknown) => void;
type UnaryMethod = (argument: unknown, a1?: unknown, a2?: unknown, a3?: unknown) => unknown;
const makeUnaryRequest = Client.prototype.makeUnaryRequest as (
  this: Client,
  method: string,
  serialize: (value: unknown) => Buffer,
  deserialize: (bytes: Buffer) => unknown,
  argument: unknown,
  metadata?: unknown,
  options?: unknown,
  callback?: unknown,
) => unknown;

/**
 * Replaces the unary methods of `client` with ones that give every call the default deadline
 * and, with an observer, its own copy of the request metadata for the observer, which sees the
 * status before the caller's callback does.
 */
function observeUnaryCalls(
  client: Client,
  service: ServiceDefinition,
  deadlineMs: number,
  observer: ClientCallObserver | undefined,
): void {
  const own = client as unknown as Record<string, UnaryMethod>;
  for (const [name, definition] of Object.entries(service)) {
    if (definition.requestStream || definition.responseStream) continue;
    const { path, requestSerialize, responseDeserialize } = definition;
    const method: UnaryMethod = function (this: Client, argument, a1, a2, a3) {
      return unaryCall(this, path, requestSerialize, responseDeserialize, argument, a1, a2, a3);
    };
    // The generated method carries its definition (`client.echo.path`, ...): so does this one.
    Object.assign(method, own[name]);
    own[name] = method;
    if (definition.originalName) own[definition.originalName] = method;
  }

  function unaryCall(
    self: Client,
    path: string,
    serialize: (value: unknown) => Buffer,
    deserialize: (bytes: Buffer) => unknown,
    argument: unknown,
    a1: unknown,
    a2: unknown,
    a3: unknown,
  ): unknown {
    // The optional arguments as grpc-js reads them: (callback), (metadata, callback),
    // (options, callback) or (metadata, options, callback). Anything else is left to grpc-js
    // to refuse.
    let metadata: Metadata | undefined;
    let options: CallOptions;
    let callback: unknown;
    if (typeof a1 === 'function') {
      options = {};
      callback = a1;
    } else if (typeof a2 === 'function') {
      if (a1 instanceof Metadata) {
        metadata = a1;
        options = {};
      } else {
        options = (a1 ?? {}) as CallOptions;
      }
      callback = a2;
    } else if (a1 instanceof Metadata && a2 instanceof Object && typeof a3 === 'function') {
      metadata = a1;
      options = a2 as CallOptions;
      callback = a3;
    } else {
      return makeUnaryRequest.call(self, path, serialize, deserialize, argument, a1, a2, a3);
    }
    if (options.deadline === undefined || options.deadline === Infinity) {
      options = { ...options, deadline: Date.now() + deadlineMs };
    }
    let sent = metadata;
    let done = callback;
    if (observer) {
      // The caller's metadata may be shared between its calls: the observer writes to a copy.
      sent = metadata ? metadata.clone() : new Metadata();
      const observation = observer.startUnary(path, sent);
      const callersCallback = callback as UnaryCallback;
      done = (err: ServiceError | null, value?: unknown) =>
        observation.end(
          err ? err.code : status.OK,
          err ? err.details : '',
          callersCallback,
          err,
          value,
        );
    }
    return makeUnaryRequest.call(
      self,
      path,
      serialize,
      deserialize,
      argument,
      sent ?? new Metadata(),
      options,
      done,
    );
  }
}

/** The deadline, run first, folded into the first extra interceptor when there is one. */
function clientInterceptors(deadlineMs: number, extra: Interceptor[] = []): Interceptor[] {
  const [first, ...rest] = extra;
  return first
    ? [withDefaultDeadline(deadlineMs, first), ...rest]
    : [defaultDeadlineInterceptor(deadlineMs)];
}
