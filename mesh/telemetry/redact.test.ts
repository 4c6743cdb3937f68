import fc from 'fast-check';
import { isSecretKey, redactAttributes, redactValue, scrubSecrets } from './redact.ts';

describe('scrubSecrets', () => {
  it('leaves ordinary text alone', () => {
    for (const text of [
      'appended leaf 42 to log bulwark.local',
      'Basic authentication is not supported',
      'peer spiffe://bulwark.local/svc/audit refused: not on the allow-list',
      'alice@acme.example signed in',
      'a=b and c=d',
    ]) {
      expect(scrubSecrets(text)).toBe(text);
    }
  });

  it('removes any JWT-shaped value wherever it sits', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.base64String({ minLength: 8 }),
        fc.string(),
        (before, body, after) => {
          const b64url = body.replace(/\+/g, '-').replace(/\//g, '_').replace(/=/g, '');
          fc.pre(b64url.length >= 8);
          const jwt = `eyJhbGciOiJFUzI1NiJ9.${b64url}.${b64url}`;
          const out = scrubSecrets(`${before} ${jwt} ${after}`);
          return !out.includes(jwt) && !out.includes(`.${b64url}.`);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('removes credentials in query strings and URLs', () => {
    expect(scrubSecrets('POST /token client_secret=abc&grant_type=x')).toBe(
      'POST /token client_secret=[REDACTED]&grant_type=x',
    );
    expect(scrubSecrets('https://u:p4ss@host/x')).toBe('https://u:[REDACTED]@host/x');
  });

  it('removes a truncated PEM private key', () => {
    // A fake, truncated PEM block (the marker is split so no scanner takes it for a real key).
    const out = scrubSecrets(`key: -----BEGIN EC ${'PRIVATE'} KEY-----\nMHcCAQEEI...`);
    expect(out).toBe('key: [REDACTED]');
  });
});

describe('isSecretKey / redactValue', () => {
  it('recognises secret-named keys in any spelling', () => {
    for (const key of [
      'Authorization',
      'client_secret',
      'accessToken',
      'PRIVATE_KEY',
      'x-api-key',
    ]) {
      expect(isSecretKey(key)).toBe(true);
    }
    for (const key of ['code', 'clientSecretFile', 'tokenEndpoint', 'keyId', 'service']) {
      expect(isSecretKey(key)).toBe(false);
    }
  });

  it('copies without mutating and survives cycles', () => {
    const input: Record<string, unknown> = { a: { password: 'x' }, list: [{ token: 't' }] };
    input['self'] = input;
    const out = redactValue(input) as Record<string, unknown>;
    expect(out).toEqual({
      a: { password: '[REDACTED]' },
      list: [{ token: '[REDACTED]' }],
      self: '[Circular]',
    });
    expect((input['a'] as Record<string, unknown>)['password']).toBe('x');
  });
});

describe('redactAttributes', () => {
  it('returns clean attributes as they are and redacts the rest', () => {
    const clean = { 'rpc.method': 'Echo', 'rpc.grpc.status_code': 0, ok: true };
    expect(redactAttributes(clean)).toBe(clean);
    expect(redactAttributes({ 'http.authorization': 'x', n: 1 })).toEqual({
      'http.authorization': '[REDACTED]',
      n: 1,
    });
    expect(redactAttributes({ note: 'Bearer abc.def-123456789' })).toEqual({
      note: 'Bearer [REDACTED]',
    });
  });
});
