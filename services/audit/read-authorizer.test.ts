import { Effect, type DecideRequest } from '../../gen/bulwark/policy/v1/policy.ts';
import { allowListReadAuthorizer, policyReadAuthorizer } from './read-authorizer.ts';

describe('read authorizers', () => {
  it('allow-list: exact IDs and /* prefixes; no identity reads nothing', async () => {
    const read = allowListReadAuthorizer([
      'spiffe://bulwark.local/svc/auditor',
      'spiffe://bulwark.local/partner/acme/*',
    ]);
    expect(await read({ spiffeId: 'spiffe://bulwark.local/svc/auditor' })).toBe(true);
    expect(await read({ spiffeId: 'spiffe://bulwark.local/partner/acme/siem' })).toBe(true);
    expect(await read({ spiffeId: 'spiffe://bulwark.local/svc/inference' })).toBe(false);
    expect(await read({ spiffeId: 'spiffe://bulwark.local/svc/auditor-2' })).toBe(false);
    expect(await read({ spiffeId: undefined })).toBe(false);
  });

  it('policy: asks for read on audit:log and honours only an explicit allow', async () => {
    const asked: DecideRequest[] = [];
    const read = policyReadAuthorizer(async (req) => {
      asked.push(req);
      return {
        effect: req.subject.endsWith('/auditor') ? Effect.EFFECT_ALLOW : Effect.EFFECT_DENY,
        matchedRule: '',
        revision: 'r1',
        reason: '',
      } as never;
    });
    expect(await read({ spiffeId: 'spiffe://bulwark.local/svc/auditor' })).toBe(true);
    expect(await read({ spiffeId: 'spiffe://bulwark.local/svc/inference' })).toBe(false);
    expect(await read({ spiffeId: undefined })).toBe(false);
    expect(asked[0]).toMatchObject({ object: 'audit:log', action: 'read' });
    expect(asked).toHaveLength(2);
    const unspecified = policyReadAuthorizer(
      async () => ({ effect: Effect.EFFECT_UNSPECIFIED }) as never,
    );
    expect(await unspecified({ spiffeId: 'spiffe://bulwark.local/svc/auditor' })).toBe(false);
  });
});
