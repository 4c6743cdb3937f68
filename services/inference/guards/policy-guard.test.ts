import {
  Effect,
  type DecideRequest,
  type DecideResponse,
} from '../../../gen/bulwark/policy/v1/policy.ts';
import { errorCode } from '../../../mesh/errors.ts';
import { createPolicyGuard } from './policy-guard.ts';
import type { Caller } from './token-guard.ts';

const caller: Caller = {
  subject: 'acme/alice',
  org: 'acme',
  roles: ['analyst'],
  scopes: ['model:infer'],
  clientId: 'app',
  jti: 'j',
  certificateBound: true,
};

function fakePolicy(answer: (r: DecideRequest) => DecideResponse) {
  const calls: DecideRequest[] = [];
  return {
    calls,
    client: {
      decide: async (r: DecideRequest) => {
        calls.push(r);
        return answer(r);
      },
    },
  };
}

test('asks with subject, org, object, action and attributes; caches allows under the same revision', async () => {
  let revision = 'r1';
  const fake = fakePolicy(() => ({
    effect: Effect.EFFECT_ALLOW,
    matchedRule: 'p:1',
    revision,
    reason: 'ok',
  }));
  let t = 0;
  const guard = createPolicyGuard({ client: fake.client, now: () => t });
  const q = {
    caller,
    object: 'model:iris@1',
    action: 'infer',
    riskTier: 'high' as const,
    batchSize: 2,
  };
  expect(await guard.check(q)).toEqual({ revision: 'r1', matchedRule: 'p:1', reason: 'ok' });
  await guard.check(q);
  expect(fake.calls).toHaveLength(1);
  expect(fake.calls[0]).toMatchObject({
    subject: 'acme/alice',
    org: 'acme',
    object: 'model:iris@1',
    action: 'infer',
    roles: ['analyst'],
    attributes: { riskTier: 3, certificateBound: true, batchSize: 2, scopes: ['model:infer'] },
  });
  t += 6000; // expired entry: asks again and learns a new revision
  revision = 'r2';
  expect((await guard.check(q)).revision).toBe('r2');
  expect(fake.calls).toHaveLength(2);
});

test('a deny is PERMISSION_DENIED with the reason; an unspecified effect is a deny', async () => {
  const deny = createPolicyGuard({
    client: fakePolicy(() => ({
      effect: Effect.EFFECT_DENY,
      matchedRule: 'd:1',
      revision: 'r',
      reason: 'outside hours',
    })).client,
  });
  await expect(
    deny.check({ caller, object: 'model:credit@1', action: 'infer', riskTier: 'high' }),
  ).rejects.toThrow('policy denies infer on model:credit@1: outside hours');
  const odd = createPolicyGuard({
    client: fakePolicy(() => ({
      effect: Effect.EFFECT_UNSPECIFIED,
      matchedRule: '',
      revision: 'r',
      reason: '',
    })).client,
  });
  await expect(
    odd.check({ caller, object: 'model:iris', action: 'infer', riskTier: 'low' }),
  ).rejects.toMatchObject({
    code: 'ERR_INFERENCE_PERMISSION_DENIED',
  });
});

test('an unreachable policy service fails closed with UNAVAILABLE', async () => {
  const guard = createPolicyGuard({
    client: {
      decide: () => Promise.reject(new Error('connect ECONNREFUSED')),
    },
  });
  try {
    await guard.check({ caller, object: 'model:iris', action: 'infer', riskTier: 'low' });
    throw new Error('expected refusal');
  } catch (err) {
    expect(errorCode(err)).toBe('ERR_INFERENCE_POLICY_UNAVAILABLE');
    expect((err as Error).message).toBe('policy service unavailable');
  }
});

test('a revision seen by the poll drops cached decisions at once', async () => {
  let revision = 'r1';
  const fake = fakePolicy(() => ({
    effect: Effect.EFFECT_ALLOW,
    matchedRule: 'p:1',
    revision,
    reason: 'ok',
  }));
  let serving = 'r1';
  let reachable = true;
  const client = {
    ...fake.client,
    getRevision: async () => {
      if (!reachable) throw new Error('connection refused');
      return serving;
    },
  };
  const guard = createPolicyGuard({ client, revisionPollMs: 0 });
  const q = { caller, object: 'model:iris@1', action: 'infer', riskTier: 'low' as const };
  await guard.check(q);
  await guard.refreshRevision();
  await guard.check(q);
  expect(fake.calls).toHaveLength(1);
  // A reload elsewhere: the next check asks again instead of reusing the old answer.
  serving = 'r2';
  revision = 'r2';
  await guard.refreshRevision();
  expect((await guard.check(q)).revision).toBe('r2');
  expect(fake.calls).toHaveLength(2);
  // Policy unreachable: the cache is dropped, so the next check must ask (and fail closed).
  reachable = false;
  await expect(guard.refreshRevision()).rejects.toThrow('connection refused');
  client.decide = async () => {
    throw new Error('connection refused');
  };
  await expect(guard.check(q)).rejects.toMatchObject({ code: 'ERR_INFERENCE_POLICY_UNAVAILABLE' });
  guard.stop();
});
