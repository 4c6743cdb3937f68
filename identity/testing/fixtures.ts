import type { OrganisationConfig } from '../options.ts';

/**
 * An organisation whose upstream IdP is never contacted: enough for broker tests that sign in
 * only as far as the broker's own pages, issue client-credentials tokens or manage keys.
 */
export const OFFLINE_ACME: OrganisationConfig = {
  id: 'acme',
  displayName: 'Acme',
  issuer: 'https://idp.acme.example',
  clientId: 'bulwark',
  clientSecret: 'unused',
  emailDomains: ['acme.example'],
  roleMapping: [],
};
