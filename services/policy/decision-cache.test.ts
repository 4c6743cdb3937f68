import { DecisionCache } from './decision-cache.ts';
import type { NormalizedRequest } from './engine.ts';

const req = (subject: string, attributes = {}): NormalizedRequest => ({
  subject,
  org: 'acme',
  object: 'model:iris',
  action: 'infer',
  roles: [],
  attributes,
});
const decision = (revision: string) => ({ allowed: true, matchedRule: 'r', revision, reason: '' });

describe('DecisionCache', () => {
  it('keys on the revision, so a new revision never sees old decisions', () => {
    const cache = new DecisionCache(10);
    cache.set(DecisionCache.key('rev1', req('a')), decision('rev1'));
    expect(cache.get(DecisionCache.key('rev1', req('a')))).toBeDefined();
    expect(cache.get(DecisionCache.key('rev2', req('a')))).toBeUndefined();
  });

  it('keys on every attribute a condition can read', () => {
    const a = DecisionCache.key('r', req('a', { acr: 'mfa', hour: 3 }));
    expect(DecisionCache.key('r', req('a', { acr: 'pwd', hour: 3 }))).not.toBe(a);
    expect(DecisionCache.key('r', req('a', { acr: 'mfa', hour: 4 }))).not.toBe(a);
    expect(DecisionCache.key('r', req('a', { acr: 'mfa', hour: 3, scopes: ['x'] }))).not.toBe(a);
    expect(DecisionCache.key('r', req('a', { hour: 3 }))).not.toBe(
      DecisionCache.key('r', req('a', { acr: '', hour: 3 })),
    );
  });

  it('cannot be confused by separator characters inside attribute values', () => {
    const a = DecisionCache.key('r', req('a', { acr: 'x\u0001', client_id: 'y' }));
    const b = DecisionCache.key('r', req('a', { acr: 'x', client_id: '\u0001y' }));
    expect(a).not.toBe(b);
  });

  it('evicts the least recently used entry when full', () => {
    const cache = new DecisionCache(2);
    const k = (s: string) => DecisionCache.key('r', req(s));
    cache.set(k('a'), decision('r'));
    cache.set(k('b'), decision('r'));
    cache.get(k('a'));
    cache.set(k('c'), decision('r'));
    expect(cache.get(k('b'))).toBeUndefined();
    expect(cache.get(k('a'))).toBeDefined();
    expect(cache.size).toBe(2);
  });
});
