import { unknownScope } from './scope-guard.ts';

test('known scopes pass, the first unknown one is named', () => {
  expect(unknownScope('openid model:infer audit:read')).toBeUndefined();
  expect(unknownScope(undefined)).toBeUndefined();
  expect(unknownScope('model:infer model:everything policy:admin')).toBe('model:everything');
  expect(unknownScope('MODEL:INFER')).toBe('MODEL:INFER');
});
