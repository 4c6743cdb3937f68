import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { Metadata } from '@grpc/grpc-js';
import {
  HealthCheckResponse_ServingStatus,
  HealthClient,
} from '../../gen/grpc/health/v1/health.ts';
import { serviceFiles, type CertificateFiles } from '../ca/index.ts';
import { SERVICE_NAMES, type ServiceConfig } from '../config/index.ts';
import { createMeshClient } from '../kit/index.ts';

/** A readiness check that can be called repeatedly, and closed when no longer needed. */
export interface Probe {
  check(): Promise<boolean>;
  close(): void;
}

/**
 * The identity a health probe presents to a mesh service: the first mesh service on its
 * allow-list, preferring `gateway` (the identity Envoy's own health checks use), so probing
 * adds no new identity to any allow-list. Undefined when the list names no mesh service.
 */
export function probeIdentity(service: ServiceConfig, trustDomain: string): string | undefined {
  const names = ['gateway', ...SERVICE_NAMES.filter((n) => n !== 'gateway')];
  return names.find(
    (n) => n !== service.name && service.allowedPeers.includes(`spiffe://${trustDomain}/svc/${n}`),
  );
}

/**
 * `grpc.health.v1.Health/Check` over mTLS: true when the server as a whole is `SERVING`.
 *
 * @example
 * ```ts
 * const probe = grpcHealthProbe(config.services.audit, serviceFiles(certs, 'gateway'));
 * await probe.check(); // true once audit serves
 * ```
 */
export function grpcHealthProbe(service: ServiceConfig, tls: CertificateFiles): Probe {
  const client = createMeshClient(HealthClient, {
    address: service.address,
    tls,
    expectedServer: service.spiffeId,
    channelOptions: {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 500,
    },
  });
  return {
    check: () =>
      new Promise((resolve) => {
        client.check({ service: '' }, new Metadata(), { deadline: Date.now() + 1500 }, (err, res) =>
          resolve(!err && res?.status === HealthCheckResponse_ServingStatus.SERVING),
        );
      }),
    close: () => client.close(),
  };
}

/** GET `<url>` over HTTPS trusting only the mesh CA: true on HTTP 200. */
export function httpsProbe(url: string, caFile: string): Probe {
  const ca = readFileSync(caFile, 'utf8');
  return {
    check: () =>
      new Promise((resolve) => {
        const target = new URL(url);
        const req = request(
          target,
          {
            ca,
            timeout: 1500,
            // Mesh certificates name localhost; loopback IPs are checked against their IP SANs.
            servername: target.hostname.match(/^[\d.]+$|^\[/) ? undefined : target.hostname,
            agent: false,
          },
          (res) => {
            res.resume();
            resolve(res.statusCode === 200);
          },
        );
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve(false));
        req.end();
      }),
    close: () => {},
  };
}

/** Probes for the gRPC mesh services, presenting {@link probeIdentity}'s certificate. */
export function meshProbe(service: ServiceConfig, trustDomain: string, certsDir: string): Probe {
  const as = probeIdentity(service, trustDomain) ?? 'gateway';
  return grpcHealthProbe(service, serviceFiles(certsDir, as));
}
