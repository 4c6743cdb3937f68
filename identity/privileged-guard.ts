import { decodeJwt } from 'jose';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Auditor } from './auditor.ts';

/**
 * Scopes whose tokens are issued only once the audit log has acknowledged the issuance: they
 * change models or policy or read the log itself. `model:infer` tokens are not among them:
 * inference itself refuses to answer unaudited, so its tokens never need to wait for audit.
 */
export const PRIVILEGED_SCOPES: ReadonlySet<string> = new Set([
  'model:admin',
  'policy:admin',
  'audit:read',
]);

/** Whether a space-separated scope string holds a privileged scope. */
export function isPrivileged(scope: unknown): boolean {
  return typeof scope === 'string' && scope.split(' ').some((s) => PRIVILEGED_SCOPES.has(s));
}

/**
 * Fails closed for privileged tokens: after the token endpoint has built a successful answer
 * (any grant), a token carrying a privileged scope is handed out only when the audit log
 * acknowledges its issuance record. Otherwise the client gets `503 temporarily_unavailable`
 * and never sees the token; the refusal is recorded (queued) too.
 */
export function attachPrivilegedIssuanceGuard(provider: Provider, auditor: Auditor): void {
  provider.use(async (ctx: KoaContextWithOIDC, next: () => Promise<void>) => {
    await next();
    if (ctx.method !== 'POST' || ctx.path !== '/token' || ctx.status !== 200) return;
    const body = ctx.body as { access_token?: unknown } | undefined;
    if (typeof body?.access_token !== 'string') return;
    let claims: Record<string, unknown>;
    try {
      claims = decodeJwt(body.access_token);
    } catch {
      return;
    }
    if (!isPrivileged(claims.scope)) return;
    const grantType = (ctx.oidc?.params as { grant_type?: string } | undefined)?.grant_type;
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    const actor = {
      sub: str(claims.sub),
      org: str(claims.org),
      clientId: str(claims.client_id),
      sourceAddress: ctx.req.socket.remoteAddress,
    };
    const target = {
      resource: Array.isArray(claims.aud) ? claims.aud.join(' ') : str(claims.aud),
      scope: str(claims.scope),
      tokenId: str(claims.jti),
      grantType,
    };
    if (
      await auditor.recordAcknowledged({ action: 'token.issue', outcome: 'success', actor, target })
    ) {
      return;
    }
    await auditor.record({
      action: 'token.refuse',
      outcome: 'failure',
      reason: 'audit unavailable for a privileged scope',
      actor,
      target: { ...target, tokenId: undefined },
    });
    ctx.status = 503;
    ctx.body = {
      error: 'temporarily_unavailable',
      error_description:
        'the audit log cannot record this issuance now; privileged tokens are issued only once it can. Try again shortly.',
    };
  });
}
