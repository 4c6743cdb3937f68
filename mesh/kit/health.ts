import { status, type ServerWritableStream } from '@grpc/grpc-js';
import {
  HealthCheckResponse_ServingStatus as Wire,
  HealthService,
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthServer,
} from '../../gen/grpc/health/v1/health.ts';

/** Status of one service in the `grpc.health.v1` health service. */
export type ServingStatus = 'SERVING' | 'NOT_SERVING';

/**
 * The `grpc.health.v1.Health` service (Check + Watch) and the switch that sets each
 * service's status. The empty service name `''` stands for the whole server.
 *
 * @example
 * ```ts
 * const health = createHealthService();
 * server.addService(health.definition, health.implementation);
 * health.setStatus('bulwark.audit.v1.AuditService', 'NOT_SERVING'); // store down
 * ```
 */
export interface MeshHealth {
  readonly definition: typeof HealthService;
  readonly implementation: HealthServer;
  setStatus(service: string, status: ServingStatus): void;
  getStatus(service: string): ServingStatus | undefined;
  /** Sets every service NOT_SERVING and ends all Watch streams (for shutdown). */
  shutdown(): void;
}

const toWire = (s: ServingStatus | undefined): HealthCheckResponse['status'] =>
  s === undefined ? Wire.SERVICE_UNKNOWN : s === 'SERVING' ? Wire.SERVING : Wire.NOT_SERVING;

/** Creates a health service; `initial` statuses are set before any call. */
export function createHealthService(initial: Record<string, ServingStatus> = {}): MeshHealth {
  const statuses = new Map<string, ServingStatus>(Object.entries(initial));
  const watchers = new Map<
    string,
    Set<ServerWritableStream<HealthCheckRequest, HealthCheckResponse>>
  >();

  const notify = (service: string) => {
    for (const call of watchers.get(service) ?? []) {
      call.write({ status: toWire(statuses.get(service)) });
    }
  };

  const implementation: HealthServer = {
    check(call, callback) {
      const current = statuses.get(call.request.service);
      if (current === undefined) {
        callback({ code: status.NOT_FOUND, details: 'unknown service' });
        return;
      }
      callback(null, { status: toWire(current) });
    },
    watch(call) {
      const service = call.request.service;
      let set = watchers.get(service);
      if (!set) {
        set = new Set();
        watchers.set(service, set);
      }
      set.add(call);
      call.on('cancelled', () => set.delete(call));
      call.write({ status: toWire(statuses.get(service)) });
    },
  };

  return {
    definition: HealthService,
    implementation,
    setStatus(service, next) {
      if (statuses.get(service) === next) return;
      statuses.set(service, next);
      notify(service);
    },
    getStatus: (service) => statuses.get(service),
    shutdown() {
      for (const service of statuses.keys()) {
        statuses.set(service, 'NOT_SERVING');
        notify(service);
      }
      for (const set of watchers.values()) {
        for (const call of set) call.end();
        set.clear();
      }
    },
  };
}
