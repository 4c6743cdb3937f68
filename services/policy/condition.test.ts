import { compileCondition, ConditionSyntaxError } from './condition.ts';

describe('condition language', () => {
  it('evaluates comparisons of every attribute kind', () => {
    const c = compileCondition(
      "risk_tier <= 'medium' && acr == 'mfa' && certificate_bound && hour >= 8 && hour < 18 && " +
        "batch_size in [1, 2, 4] && source_address in ['10.0.0.0/8', '::1'] && scopes has 'model:infer'",
    );
    const ok = {
      risk_tier: 'low',
      acr: 'mfa',
      certificate_bound: true,
      hour: 9,
      batch_size: 2,
      source_address: '10.1.2.3',
      scopes: ['model:infer'],
    } as const;
    expect(c.evaluate(ok)).toBe(true);
    expect(c.evaluate({ ...ok, risk_tier: 'high' })).toBe(false);
    expect(c.evaluate({ ...ok, hour: 18 })).toBe(false);
    expect(c.evaluate({ ...ok, source_address: '192.168.0.1' })).toBe(false);
    expect(c.evaluate({ ...ok, source_address: '::ffff:10.0.0.9' })).toBe(true);
    expect(c.evaluate({ ...ok, source_address: '::1' })).toBe(true);
    expect(c.evaluate({ ...ok, scopes: [] })).toBe(false);
    expect(c.attributes).toEqual(
      expect.arrayContaining([
        'risk_tier',
        'acr',
        'hour',
        'batch_size',
        'source_address',
        'scopes',
      ]),
    );
  });

  it('is three-valued: an absent attribute makes the comparison unknown', () => {
    const c = compileCondition("acr == 'mfa'");
    expect(c.evaluate({})).toBeUndefined();
    expect(compileCondition("!(acr == 'mfa')").evaluate({})).toBeUndefined();
    expect(compileCondition("acr == 'mfa' || true").evaluate({})).toBe(true);
    expect(compileCondition("acr == 'mfa' && false").evaluate({})).toBe(false);
    expect(compileCondition("not acr != 'pwd' or false").evaluate({ acr: 'pwd' })).toBe(true);
  });

  it.each([
    ['colour == "red"', 'unknown attribute "colour"'],
    ['constructor == 1', 'unknown attribute "constructor"'],
    ['__proto__ == 1', 'unknown attribute "__proto__"'],
    ["acr > 'x'", 'compare with ==, != or in'],
    ['batch_size == "ten"', 'expects numbers'],
    ["risk_tier == 'extreme'", 'expects one of'],
    ["source_address in ['10.0.0.0/33']", 'bad prefix length'],
    ["source_address in ['nope']", 'not an address'],
    ["scopes == 'x'", 'only "has'],
    ['acr', 'needs a comparison'],
    ["acr == 'a' &&", 'unexpected end of condition'],
    ['process.exit(1)', 'unexpected character "."'],
    ["acr == 'x'); require('fs').rmSync('/'); ('", 'unexpected'],
    ['acr == `x`', 'unexpected character'],
    ["acr == 'unterminated", 'unterminated string'],
    ["acr == 'a\\'b'", 'escapes are not allowed'],
    ['batch_size in [[1]]', 'lists cannot nest'],
    ['acr in "x"', '"in" and only "in" takes a list'],
  ])('refuses %s', (source, message) => {
    expect(() => compileCondition(source)).toThrow(ConditionSyntaxError);
    expect(() => compileCondition(source)).toThrow(message);
  });

  it('refuses deep nesting and long sources', () => {
    expect(() => compileCondition('('.repeat(40) + 'true' + ')'.repeat(40))).toThrow(
      'nests too deeply',
    );
    expect(() => compileCondition(`acr == '${'a'.repeat(2000)}'`)).toThrow('longer than');
  });
});
