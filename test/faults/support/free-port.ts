import { createServer } from 'node:net';

/**
 * A loopback TCP port that was free a moment ago. Services that are killed and restarted must
 * come back on the same address (their peers were configured with it), so the port is chosen
 * up front instead of binding port 0 inside the service.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no port bound'))));
    });
  });
}
