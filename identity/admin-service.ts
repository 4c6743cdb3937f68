import type { Logger } from 'pino';
import { unaryHandler } from '../mesh/kit/index.ts';
import {
  IdentityAdminServiceService,
  type IdentityAdminServiceServer,
  type SigningKey,
} from '../gen/bulwark/identity/v1/identity.ts';
import type { Broker } from './broker.ts';
import type { SigningKeyInfo } from './key-manager.ts';

function toSigningKey(k: SigningKeyInfo): SigningKey {
  return {
    kid: k.kid,
    alg: k.alg,
    createdAt: new Date(k.createdAt),
    activatesAt: new Date(k.activatesAt),
    retiredAt: k.retiredAt === undefined ? undefined : new Date(k.retiredAt),
    removeAfter: k.removeAfter === undefined ? undefined : new Date(k.removeAfter),
    active: k.active,
  };
}

/**
 * `bulwark.identity.v1.IdentityAdminService` over a running broker. Attach it to a mesh server
 * the caller made (the allow-list decides who may administer the broker).
 *
 * @example
 * ```ts
 * const admin = createIdentityAdminService(broker, { logger });
 * meshServer.addService(admin.definition, admin.implementation);
 * ```
 */
export function createIdentityAdminService(broker: Broker, options: { logger?: Logger } = {}) {
  const implementation: IdentityAdminServiceServer = {
    listOrganisations: unaryHandler(
      () => ({
        organisations: broker
          .organisations()
          .map((o) => ({
            id: o.id,
            displayName: o.displayName,
            issuer: o.issuer,
            emailDomains: o.emailDomains,
            trustedIssuers: (o.trustedIssuers ?? []).map((t) => t.issuer),
          }))
          .sort((a, b) => a.id.localeCompare(b.id)),
      }),
      options,
    ),
    listSigningKeys: unaryHandler(
      () => ({ keys: broker.signingKeys().map(toSigningKey) }),
      options,
    ),
    // On demand (a key may be compromised): the new key signs at once, with none of the
    // scheduled rotation's publish-ahead; see Broker.rotateSigningKeys.
    rotateSigningKeys: unaryHandler(async (call) => {
      const published = await broker.rotateSigningKeys(call.request.reason || 'on demand');
      return { activeKey: toSigningKey(published[0]!), publishedKeys: published.map(toSigningKey) };
    }, options),
    revokeClient: unaryHandler(async (call) => {
      const revokedGrants = await broker.revokeClient(
        call.request.clientId,
        call.request.reason || undefined,
      );
      return { revokedGrants };
    }, options),
  };
  return { definition: IdentityAdminServiceService, implementation };
}
