import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';

/** Options for {@link createTlsFetch}. */
export interface TlsFetchOptions {
  /** Extra trusted CA certificates (PEM), e.g. the mesh CA or a demo CA. */
  ca?: string | string[];
  /** Client certificate and key (PEM) for mutual TLS. */
  cert?: string;
  key?: string;
  /** Abort a request that has not completed within this many milliseconds. Default 5000. */
  timeoutMs?: number;
}

/**
 * A `fetch`-compatible function over `node:https` that trusts the given CAs (Node's global
 * fetch cannot take per-call CAs without undici, which is not a dependency). Used for the
 * upstream IdPs (openid-client `customFetch`, JWKS) and by the CLI.
 *
 * @example
 * ```ts
 * const fetchFn = createTlsFetch({ ca: caPem, timeoutMs: 3000 });
 * const res = await fetchFn('https://127.0.0.1:8443/.well-known/openid-configuration');
 * ```
 */
export function createTlsFetch(options: TlsFetchOptions = {}): typeof fetch {
  const timeoutMs = options.timeoutMs ?? 5000;
  // Keep connections open: a TLS handshake per request would dominate short token calls.
  const agent = new HttpsAgent({
    keepAlive: true,
    ca: options.ca,
    cert: options.cert,
    key: options.key,
  });
  return (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
    const headers = new Headers(
      init?.headers ?? (input instanceof Request ? input.headers : undefined),
    );
    let body: Buffer | undefined;
    if (init?.body !== undefined && init.body !== null) {
      body = Buffer.from(
        await new Response(init.body as ConstructorParameters<typeof Response>[0]).arrayBuffer(),
      );
      if (!headers.has('content-type') && init.body instanceof URLSearchParams) {
        headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
      }
    }
    const signals = [AbortSignal.timeout(timeoutMs), init?.signal].filter(
      (s): s is AbortSignal => !!s,
    );
    const signal = AbortSignal.any(signals);
    const requestFn = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return await new Promise<Response>((resolve, reject) => {
      const req = requestFn(
        url,
        {
          method,
          headers: Object.fromEntries(headers.entries()),
          ...(url.protocol === 'https:' ? { agent } : {}),
          signal,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const responseHeaders = new Headers();
            for (const [name, value] of Object.entries(res.headers)) {
              if (value === undefined) continue;
              for (const v of Array.isArray(value) ? value : [value])
                responseHeaders.append(name, v);
            }
            const status = res.statusCode ?? 500;
            const noBody = status === 204 || status === 304;
            resolve(
              new Response(noBody ? null : Buffer.concat(chunks), {
                status,
                statusText: res.statusMessage,
                headers: responseHeaders,
              }),
            );
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }) as typeof fetch;
}
