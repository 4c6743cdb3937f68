import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { BulwarkConfig } from '../config/index.ts';
import { serviceFiles } from '../ca/index.ts';
import type { BrokerLaunchOptions } from '../../identity/launch-options.ts';
import { DEVICE_CODE_GRANT, TOKEN_EXCHANGE_GRANT } from '../../identity/provider-config.ts';
import { PARTNER_CLIENT } from './state.ts';

/** The public client `bulwark login` uses (device flow, RFC 8628). */
export const CLI_CLIENT_ID = 'bulwark-cli';

/** Roles of each organisation's demo back-end clients (may run low-risk models). */
const BACKEND_ROLES = ['analyst'];

/** Where the identity broker's SQLite database lives. */
export const brokerDatabase = (config: BulwarkConfig) => join(config.stateDir, 'identity.sqlite');

/** The secret file of an organisation's `<org>-backend` client, as `bulwark up` writes it. */
export const backendSecretFile = (config: BulwarkConfig, org: string) =>
  join(config.stateDir, 'secrets', `${org}-${PARTNER_CLIENT}-client-secret`);

/**
 * Maps `bulwark.yaml` to the broker's launch options (`identity/main.ts --options-file`).
 * Secrets stay in their files: only paths are written. Clients: the CLI (device flow), and
 * per organisation a back-end with a client secret (`<org>-backend`, only when its secret
 * file exists) and one authenticated by its partner certificate (`<org>-backend-mtls`,
 * certificate-bound tokens). Audit records go to `services.audit` over mTLS.
 */
export function brokerLaunchOptions(config: BulwarkConfig, certsDir: string): BrokerLaunchOptions {
  const self = config.services.identity;
  const tls = serviceFiles(certsDir, 'identity');
  const clients: BrokerLaunchOptions['clients'] = [
    { clientId: CLI_CLIENT_ID, auth: 'none', grantTypes: [DEVICE_CODE_GRANT, 'refresh_token'] },
  ];
  for (const org of config.organisations) {
    const secret = backendSecretFile(config, org.id);
    if (existsSync(secret)) {
      clients.push({
        clientId: `${org.id}-${PARTNER_CLIENT}`,
        org: org.id,
        roles: BACKEND_ROLES,
        auth: 'client_secret_basic',
        clientSecretFile: secret,
        grantTypes: ['client_credentials', TOKEN_EXCHANGE_GRANT],
        scopes: ['model:infer'],
      });
    }
    clients.push({
      clientId: `${org.id}-${PARTNER_CLIENT}-mtls`,
      org: org.id,
      roles: BACKEND_ROLES,
      auth: 'tls_client_auth',
      tlsSanUri: `spiffe://${config.trustDomain}/partner/${org.id}/${PARTNER_CLIENT}`,
      grantTypes: ['client_credentials', TOKEN_EXCHANGE_GRANT],
      scopes: ['model:infer'],
    });
  }
  return {
    ...(self.publicUrl ? { issuer: self.publicUrl.replace(/\/$/, '') } : {}),
    host: self.host,
    port: self.port,
    metricsPort: self.metricsPort,
    tls: { certFile: tls.certFile, keyFile: tls.keyFile, caFiles: [tls.caFile] },
    databasePath: brokerDatabase(config),
    organisations: config.organisations.map((org) => ({
      id: org.id,
      displayName: org.displayName,
      issuer: org.issuer,
      clientId: org.clientId,
      clientSecretFile: org.clientSecretFile,
      emailDomains: org.emailDomains,
      roleMapping: org.roleMapping.map((r) => ({ ...r })),
      defaultRoles: org.defaultRoles,
      ...(org.upstreamScope ? { upstreamScope: org.upstreamScope } : {}),
      trustedIssuers: org.trustedIssuers.map((t) => ({ ...t })),
    })),
    clients,
    upstream: { caFiles: existsSync(tls.caFile) ? [tls.caFile] : [] },
    // Every login, issuance, exchange, refusal and key rotation goes to the audit service.
    audit: {
      address: config.services.audit.address,
      spiffeId: config.services.audit.spiffeId,
      queueFile: join(config.stateDir, 'identity-audit-queue.jsonl'),
    },
  };
}
