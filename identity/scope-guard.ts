import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse } from 'node:querystring';
import { MESH_SCOPES } from './resources.ts';

const KNOWN = new Set(['openid', 'offline_access', 'email', 'profile', 'org', ...MESH_SCOPES]);
const LIMIT = 56 * 1024;

/** The first requested scope the broker does not know, if any. */
export function unknownScope(scope: unknown): string | undefined {
  if (typeof scope !== 'string') return undefined;
  return scope.split(' ').find((s) => s && !KNOWN.has(s));
}

/**
 * `oidc-provider` silently drops scopes it does not know; the mesh answers `invalid_scope`
 * instead, so a typo never yields a token with less (or other) access than asked for. The body
 * is read here and handed on as `req.body`, which `oidc-provider` accepts.
 */
export async function guardTokenRequestScope(
  req: IncomingMessage,
  res: ServerResponse,
): Promise<{ rejected: boolean; reason?: string; clientId?: string }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > LIMIT) {
      res.writeHead(413, {
        'content-type': 'application/json; charset=utf-8',
        connection: 'close',
      });
      res.end(
        JSON.stringify({ error: 'invalid_request', error_description: 'request body too large' }),
      );
      return { rejected: true, reason: 'request too large' };
    }
    chunks.push(chunk as Buffer);
  }
  const raw = Buffer.concat(chunks).toString('utf8');
  (req as IncomingMessage & { body?: string }).body = raw;
  const form = parse(raw);
  const bad = unknownScope(form.scope);
  if (!bad) return { rejected: false };
  res.writeHead(400, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
  });
  res.end(
    JSON.stringify({ error: 'invalid_scope', error_description: 'requested scope is not known' }),
  );
  return {
    rejected: true,
    reason: 'invalid_scope',
    clientId: typeof form.client_id === 'string' ? form.client_id : undefined,
  };
}
