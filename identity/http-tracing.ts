import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  context,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type TextMapPropagator,
  type Tracer,
} from '@opentelemetry/api';

/** Tracing of the broker's HTTP endpoints (e.g. `createTelemetry(...)`'s tracer and propagator). */
export interface HttpTracing {
  tracer: Tracer;
  /** Reads W3C `traceparent`/`tracestate` from the request headers. */
  propagator: TextMapPropagator;
}

// Paths that are routes as they are; everything else is reduced to a template, so span names
// stay few and never carry an interaction id, a code or anything else a client typed.
const FIXED_ROUTES = new Set([
  '/.well-known/openid-configuration',
  '/jwks',
  '/auth',
  '/token',
  '/token/introspection',
  '/token/revocation',
  '/device/auth',
  '/device',
  '/me',
  '/session/end',
  '/organisations',
  '/login/callback',
]);
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']);
const STEP = /^[a-z][a-z-]{0,23}$/;

/**
 * The route template of a request path: `/token`, `/login/:uid`, `/login/:uid/callback`,
 * `/auth/:uid`, `/device/:uid`; anything unknown is `/*`.
 *
 * @example
 * ```ts
 * routeOf('/login/6Xr0f.../callback'); // '/login/:uid/callback'
 * ```
 */
export function routeOf(pathname: string): string {
  if (FIXED_ROUTES.has(pathname)) return pathname;
  const parts = pathname.split('/').filter(Boolean);
  const [head, , step, ...more] = parts;
  if ((head === 'login' || head === 'auth' || head === 'device') && parts.length >= 2) {
    if (parts.length === 2) return `/${head}/:uid`;
    if (step && STEP.test(step) && more.length === 0) return `/${head}/:uid/${step}`;
    return `/${head}/:uid/*`;
  }
  return '/*';
}

const headerGetter = {
  keys: (carrier: IncomingMessage['headers']) => Object.keys(carrier),
  get: (carrier: IncomingMessage['headers'], key: string) => carrier[key.toLowerCase()],
};

/**
 * Wraps the broker's request handler in an HTTP SERVER span per request, named
 * `<METHOD> <route>` and continuing the caller's W3C trace context from the `traceparent`
 * header. The handler runs inside the span, so its logs carry the trace id and its audit
 * appends join the trace. Attributes are the method, route, status code and peer address:
 * never the query, the body, a header value or a path with an id in it.
 *
 * @example
 * ```ts
 * const handle = traceHttp(telemetry, (req, res) => oidc(req, res));
 * https.createServer(tlsOptions, handle);
 * ```
 */
export function traceHttp(
  tracing: HttpTracing,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  const { tracer, propagator } = tracing;
  return (req, res) => {
    const method = METHODS.has(req.method ?? '') ? req.method! : 'HTTP';
    let route = '/*';
    try {
      route = routeOf(new URL(req.url ?? '/', 'https://broker.invalid').pathname);
    } catch {
      // An unparsable target keeps the catch-all route.
    }
    const parent = propagator.extract(ROOT_CONTEXT, req.headers, headerGetter);
    const span = tracer.startSpan(
      `${method} ${route}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'http.request.method': method,
          'http.route': route,
          'url.scheme': 'https',
          ...(req.socket.remoteAddress ? { 'network.peer.address': req.socket.remoteAddress } : {}),
        },
      },
      parent,
    );
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      span.setAttribute('http.response.status_code', res.statusCode);
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    };
    res.once('finish', end);
    res.once('close', end);
    context.with(trace.setSpan(parent, span), () => handler(req, res));
  };
}
