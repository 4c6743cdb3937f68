import { compileAllowList } from './allow-list.ts';

describe('peer allow-list', () => {
  it('matches exact IDs and "/*" prefixes only', () => {
    const allowed = compileAllowList([
      'spiffe://bulwark.local/svc/inference',
      'spiffe://bulwark.local/partner/*',
    ]);
    expect(allowed('spiffe://bulwark.local/svc/inference')).toBe(true);
    expect(allowed('spiffe://bulwark.local/partner/acme/scorer')).toBe(true);
    expect(allowed('spiffe://bulwark.local/svc/inference-2')).toBe(false);
    expect(allowed('spiffe://bulwark.local/svc/policy')).toBe(false);
    // The prefix ends at a path boundary: "partner-evil" is not under "partner/".
    expect(allowed('spiffe://bulwark.local/partner-evil/x')).toBe(false);
    expect(allowed('spiffe://other.domain/svc/inference')).toBe(false);
  });

  it('accepts a predicate', () => {
    const allowed = compileAllowList((id) => id.endsWith('/svc/audit'));
    expect(allowed('spiffe://bulwark.local/svc/audit')).toBe(true);
    expect(allowed('spiffe://bulwark.local/svc/policy')).toBe(false);
  });

  it('rejects entries that are not SPIFFE IDs, naming the entry', () => {
    expect(() => compileAllowList(['svc/inference'])).toThrow(
      /"svc\/inference" is not a SPIFFE ID/,
    );
    expect(() => compileAllowList('spiffe://x/svc/a' as never)).toThrow(/must be a list/);
  });
});
