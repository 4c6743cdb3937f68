import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Auditor } from './auditor.ts';
import { isPrivileged } from './privileged-guard.ts';
import { TOKEN_EXCHANGE_GRANT } from './provider-config.ts';

interface IssuedToken {
  jti?: string;
  accountId?: string;
  clientId?: string;
  aud?: string | string[];
  scope?: string;
  gty?: string;
}

const source = (ctx: KoaContextWithOIDC) => ctx?.req?.socket?.remoteAddress;

/** Turns `oidc-provider` events into audit records (never the token value itself). */
export function attachProviderAudit(provider: Provider, auditor: Auditor): void {
  const issued = (kind: string) => (token: IssuedToken) => {
    // Token exchange audits itself with the subject token's verdict.
    if (token.gty === 'token_exchange') return;
    // Privileged tokens are recorded, acknowledged, by the issuance guard before they leave.
    if (isPrivileged(token.scope)) return;
    void auditor.record({
      action: token.gty?.includes('refresh_token') ? 'token.refresh' : 'token.issue',
      outcome: 'success',
      actor: { sub: token.accountId, clientId: token.clientId },
      target: {
        resource: Array.isArray(token.aud) ? token.aud.join(' ') : token.aud,
        scope: token.scope,
        tokenId: token.jti,
        grantType: token.gty ?? kind,
      },
    });
  };
  provider.on('access_token.issued', issued('access_token'));
  provider.on('client_credentials.issued', issued('client_credentials'));
  provider.on('device_authorization.success', (ctx: KoaContextWithOIDC) => {
    void auditor.record({
      action: 'device.authorize',
      outcome: 'success',
      actor: { clientId: ctx.oidc.client?.clientId, sourceAddress: source(ctx) },
    });
  });
  const refused =
    (where: string) => (ctx: KoaContextWithOIDC, err: { error?: string; name?: string }) => {
      const grantType = (ctx.oidc?.params as { grant_type?: string } | undefined)?.grant_type;
      if (where === 'token' && grantType === TOKEN_EXCHANGE_GRANT) return;
      void auditor.record({
        action: 'token.refuse',
        outcome: 'failure',
        reason: `${where}: ${err.error ?? err.name ?? 'error'}`,
        actor: { clientId: ctx.oidc?.client?.clientId, sourceAddress: source(ctx) },
        target: grantType ? { grantType } : undefined,
      });
    };
  provider.on('grant.error', refused('token'));
  provider.on('authorization.error', refused('authorization'));
  provider.on('device_authorization.error', refused('device_authorization'));
  provider.on('introspection.error', refused('introspection'));
  provider.on('revocation.error', refused('revocation'));
}
