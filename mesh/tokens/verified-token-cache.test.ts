import { createVerifiedTokenCache } from './verified-token-cache.ts';

const start = Date.parse('2026-05-01T08:00:00Z');
const at = start / 1000;

function setup(maxEntries = 3) {
  const clock = { ms: start };
  const cache = createVerifiedTokenCache<string, string>({
    maxEntries,
    now: () => new Date(clock.ms),
    clockToleranceSec: 30,
  });
  return { clock, cache };
}
const anyKey = () => true;

describe('verified token cache', () => {
  it('answers only for the exact token text', () => {
    const { cache } = setup();
    cache.set('aaa.bbb.ccc', 'alice', { exp: at + 300, key: 'k1' });
    expect(cache.get('aaa.bbb.ccc', anyKey)).toBe('alice');
    expect(cache.get('aaa.bbb.ccd', anyKey)).toBeUndefined();
    expect(cache.get('aaa.bbb.cc', anyKey)).toBeUndefined();
    expect(cache.get('aaa.bbb.ccc ', anyKey)).toBeUndefined();
    expect(cache.stats()).toEqual({ hits: 1, misses: 3, evictions: 0 });
  });

  it('stops honouring an entry once exp (plus the tolerance) has passed', () => {
    const { clock, cache } = setup();
    cache.set('t', 'v', { exp: at + 60, key: 'k1' });
    clock.ms = start + 89_000;
    expect(cache.get('t', anyKey)).toBe('v');
    clock.ms = start + 90_000;
    expect(cache.get('t', anyKey)).toBeUndefined();
    // Dropped, not just hidden: a clock turned back does not revive it.
    clock.ms = start;
    expect(cache.get('t', anyKey)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('does not honour an entry whose nbf lies ahead (clock turned back)', () => {
    const { clock, cache } = setup();
    cache.set('t', 'v', { exp: at + 300, nbf: at, key: 'k1' });
    clock.ms = start - 31_000;
    expect(cache.get('t', anyKey)).toBeUndefined();
  });

  it('does not honour an entry whose key has left the key set', () => {
    const { cache } = setup();
    cache.set('t', 'v', { exp: at + 300, key: 'k1' });
    const seen: string[] = [];
    expect(
      cache.get('t', (key) => {
        seen.push(key);
        return key === 'k2';
      }),
    ).toBeUndefined();
    expect(seen).toEqual(['k1']);
    expect(cache.get('t', anyKey)).toBeUndefined();
  });

  it('stores nothing without a finite exp, or already outside its time window', () => {
    const { cache } = setup();
    cache.set('no-exp', 'v', { exp: Number.NaN, key: 'k' });
    cache.set('str-exp', 'v', { exp: '9999999999' as unknown as number, key: 'k' });
    cache.set('expired', 'v', { exp: at - 31, key: 'k' });
    cache.set('future', 'v', { exp: at + 300, nbf: at + 31, key: 'k' });
    cache.set('bad-nbf', 'v', { exp: at + 300, nbf: Number.POSITIVE_INFINITY, key: 'k' });
    expect(cache.size).toBe(0);
  });

  it('evicts the least recently used entry when full and stays correct', () => {
    const { cache } = setup(2);
    cache.set('a', 'A', { exp: at + 300, key: 'k' });
    cache.set('b', 'B', { exp: at + 300, key: 'k' });
    expect(cache.get('a', anyKey)).toBe('A'); // a is now the most recent
    cache.set('c', 'C', { exp: at + 300, key: 'k' });
    expect(cache.size).toBe(2);
    expect(cache.get('b', anyKey)).toBeUndefined();
    expect(cache.get('a', anyKey)).toBe('A');
    expect(cache.get('c', anyKey)).toBe('C');
    expect(cache.stats().evictions).toBe(1);
  });

  it('stores nothing when disabled and rejects bad options by name', () => {
    const { cache } = setup(0);
    cache.set('t', 'v', { exp: at + 300, key: 'k' });
    expect(cache.get('t', anyKey)).toBeUndefined();
    expect(() => createVerifiedTokenCache({ maxEntries: -1 })).toThrow('maxEntries');
    expect(() => createVerifiedTokenCache({ clockToleranceSec: -5 })).toThrow('clockToleranceSec');
  });

  it('forgets entries on delete and clear', () => {
    const { cache } = setup();
    cache.set('a', 'A', { exp: at + 300, key: 'k' });
    cache.set('b', 'B', { exp: at + 300, key: 'k' });
    cache.delete('a');
    expect(cache.get('a', anyKey)).toBeUndefined();
    cache.clear();
    expect(cache.get('b', anyKey)).toBeUndefined();
    expect(cache.size).toBe(0);
  });
});
