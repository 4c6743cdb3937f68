import { errorCode } from '../../../mesh/errors.ts';
import { createQuotaGuard } from './quota.ts';

function clock(start = Date.parse('2026-03-01T23:59:50Z')) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function refused(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(errorCode(err)).toBe('ERR_INFERENCE_QUOTA_EXCEEDED');
    return (err as Error).message;
  }
  throw new Error('expected RESOURCE_EXHAUSTED');
}

test('a client exceeding its burst is refused until the bucket refills', () => {
  const c = clock();
  const quota = createQuotaGuard({
    now: c.now,
    tiers: { low: { ratePerSec: 2, burst: 3, dailyBudget: 1000 } },
  });
  for (let i = 0; i < 3; i++) quota.take('acme/alice', 'iris', 'low');
  expect(refused(() => quota.take('acme/alice', 'iris', 'low'))).toBe(
    'rate limit of 2/s (burst 3) for model iris exceeded; retry in 500 ms',
  );
  // Another subject and another model have their own buckets.
  expect(quota.take('acme/bob', 'iris', 'low').tokens).toBe(2);
  expect(quota.take('acme/alice', 'other', 'low').tokens).toBe(2);
  c.advance(500);
  expect(quota.take('acme/alice', 'iris', 'low').tokens).toBe(0);
});

test('the daily budget runs out and resets at midnight UTC', () => {
  const c = clock();
  const quota = createQuotaGuard({
    now: c.now,
    tiers: { high: { ratePerSec: 100, burst: 100, dailyBudget: 2 } },
  });
  quota.take('acme/alice', 'credit', 'high');
  expect(quota.take('acme/alice', 'credit', 'high').dailyRemaining).toBe(0);
  expect(refused(() => quota.take('acme/alice', 'credit', 'high'))).toMatch(
    /daily budget of 2 requests/,
  );
  c.advance(10_000); // past 00:00 UTC
  expect(quota.take('acme/alice', 'credit', 'high').dailyUsed).toBe(1);
});

test('risk tiers have their own limits', () => {
  const c = clock();
  const quota = createQuotaGuard({ now: c.now });
  for (let i = 0; i < 5; i++) quota.take('acme/alice', 'credit', 'high');
  expect(refused(() => quota.take('acme/alice', 'credit', 'high'))).toMatch(/rate limit of 2\/s/);
  for (let i = 0; i < 50; i++) quota.take('acme/alice', 'iris', 'low');
});
