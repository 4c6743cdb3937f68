/**
 * The broker's JWKS is served over HTTPS with a certificate from the mesh CA. Rather than
 * asking the whole process to trust that CA (`NODE_EXTRA_CA_CERTS`), the JWKS fetch alone is
 * given it: a `fetch`-shaped function over `node:https` with an explicit `ca`, plugged into
 * jose's `createRemoteJWKSet` through its `customFetch` option.
 */
import { request } from 'node:https';
import { isIP } from 'node:net';
import type { FetchImplementation } from 'jose';

/** Largest JWKS document accepted (a key set is a few KiB). */
const MAX_BYTES = 1024 * 1024;

/**
 * A fetch for jose that trusts exactly `caPem` (plus nothing else). Loopback IP targets send
 * `localhost` as the TLS server name (mesh certificates carry it; an IP as SNI is what Node
 * warns about, DEP0123).
 *
 * @example
 * ```ts
 * const keys = createRemoteJWKSet(new URL(jwksUrl), { [customFetch]: fetchWithCa(caPem) });
 * ```
 */
export function fetchWithCa(caPem: string | Buffer): FetchImplementation {
  return (url, init) =>
    new Promise<Response>((resolve, reject) => {
      const target = new URL(url);
      if (target.protocol !== 'https:') {
        reject(new Error(`JWKS must be fetched over https, not ${target.protocol}`));
        return;
      }
      const host = target.hostname.replace(/^\[|\]$/g, '');
      const headers: Record<string, string> = {};
      init.headers.forEach((value, key) => (headers[key] = value));
      const req = request(
        target,
        {
          method: 'GET',
          headers,
          ca: caPem,
          servername: isIP(host) ? 'localhost' : host,
          signal: init.signal,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_BYTES) req.destroy(new Error('JWKS response too large'));
            else chunks.push(chunk);
          });
          res.on('end', () => {
            const out = new Headers();
            for (const [k, v] of Object.entries(res.headers))
              if (typeof v === 'string') out.set(k, v);
            resolve(
              new Response(Buffer.concat(chunks), { status: res.statusCode ?? 502, headers: out }),
            );
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    });
}
