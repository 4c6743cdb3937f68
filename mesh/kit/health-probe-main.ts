/**
 * Container health probe for a mesh service (docker compose `healthcheck`, Kubernetes `exec`
 * probes): calls its `grpc.health.v1.Health/Check` over mTLS as the service itself.
 *
 *   node mesh/kit/health-probe-main.ts --address 127.0.0.1:7442 --certs /run/secrets --name audit
 *
 * Exit status 0 when SERVING, 1 when not (the reason on stderr), 2 on bad arguments.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { probeHealth } from './health-probe.ts';

const { values } = parseArgs({
  options: {
    address: { type: 'string' },
    certs: { type: 'string', default: '/run/secrets' },
    name: { type: 'string' },
    service: { type: 'string', default: '' },
    'timeout-ms': { type: 'string', default: '2000' },
  },
});
const timeoutMs = Number(values['timeout-ms']);
if (!values.address || !values.name || !Number.isInteger(timeoutMs) || timeoutMs <= 0) {
  process.stderr.write(
    'health-probe: --address <host:port> and --name <service> are required ' +
      '(--certs <dir>, --service <grpc service>, --timeout-ms <n> optional)\n',
  );
  process.exit(2);
}
try {
  const result = await probeHealth({
    address: values.address,
    tls: {
      certFile: join(values.certs, `${values.name}.crt`),
      keyFile: join(values.certs, `${values.name}.key`),
      caFile: join(values.certs, 'ca.crt'),
    },
    service: values.service,
    timeoutMs,
  });
  if (!result.serving) process.stderr.write(`health-probe: ${result.status}\n`);
  process.exit(result.serving ? 0 : 1);
} catch (err) {
  // MeshError and CaError messages name files, never their contents.
  process.stderr.write(`health-probe: ${err instanceof Error ? err.message : 'failed'}\n`);
  process.exit(1);
}
