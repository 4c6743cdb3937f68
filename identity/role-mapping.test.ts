import fc from 'fast-check';
import { emailDomain, mapRoles } from './role-mapping.ts';

const rules = [
  { claim: 'groups', value: 'ml-engineers', role: 'model-user' },
  { claim: 'department', value: 'finance', role: 'analyst' },
  { claim: 'admin', value: true, role: 'admin' },
];

test('array claims match by membership, scalar claims by equality, defaults always apply', () => {
  expect(
    mapRoles({ groups: ['staff', 'ml-engineers'], department: 'finance', admin: true }, rules, [
      'member',
    ]),
  ).toEqual(['admin', 'analyst', 'member', 'model-user']);
});

test('nothing maps without an explicit rule (default deny), and near misses do not match', () => {
  expect(
    mapRoles({ groups: 'ml-engineers-x', department: 'Finance', admin: 'true' }, rules),
  ).toEqual([]);
});

test('roles are always a subset of the configured roles plus defaults', () => {
  fc.assert(
    fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (claims) => {
      const out = mapRoles(claims, rules, ['member']);
      for (const role of out) expect(['admin', 'analyst', 'member', 'model-user']).toContain(role);
    }),
    { numRuns: 150 },
  );
});

test('email domains are parsed strictly and lower-cased', () => {
  expect(emailDomain('Alice@ACME.example')).toBe('acme.example');
  expect(emailDomain('a@b@globex.example')).toBe('globex.example');
  for (const bad of ['', '@acme.example', 'alice@', 'alice', 42, undefined])
    expect(emailDomain(bad)).toBeUndefined();
});
