import { createServer } from 'node:net';
import { LauncherError } from './launcher-error.ts';
import type { MeshPlan } from './plan.ts';

/** One listener `bulwark up` will open, named by the configuration key that sets its port. */
export interface Listener {
  key: string;
  host: string;
  port: number;
}

/** Every listener of a plan (the gateway is not run by `bulwark up`; metrics port 0 is skipped). */
export function listenersOf(plan: MeshPlan): Listener[] {
  const { services, telemetry } = plan.config;
  const out: Listener[] = [];
  for (const name of ['identity', 'policy', 'audit', 'inference'] as const) {
    const s = services[name];
    out.push({ key: `services.${name}.port`, host: s.host, port: s.port });
    if (s.metricsPort !== 0) {
      out.push({
        key: `services.${name}.metricsPort`,
        host: telemetry.metricsHost,
        port: s.metricsPort,
      });
    }
  }
  for (const idp of plan.idps) {
    out.push({ key: `organisations.${idp.org}.issuer`, host: idp.host, port: idp.port });
  }
  return out;
}

function canBind(host: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

/**
 * Fails with a message naming the configuration key when a port is taken, before any process
 * starts (a half-started mesh is harder to understand than a clear refusal).
 */
export async function assertPortsFree(listeners: readonly Listener[]): Promise<void> {
  for (const l of listeners) {
    const err = await canBind(l.host, l.port);
    if (!err) continue;
    const why =
      err.code === 'EADDRINUSE' ? 'is in use' : `cannot be opened (${err.code ?? err.message})`;
    throw new LauncherError(
      'ERR_LAUNCHER_PORT_IN_USE',
      `port ${l.port} on ${l.host} (${l.key}) ${why}; stop the process using it ` +
        '(another `bulwark up`?), change the key in bulwark.yaml, or pass --port-base <n>',
    );
  }
}
