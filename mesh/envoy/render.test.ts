import { errorCode } from '../errors.ts';
import { renderEnvoyConfig } from './render.ts';
import type { EnvoyRenderOptions } from './render-options.ts';
import { validateEnvoyConfig } from './validate.ts';

const options: EnvoyRenderOptions = {
  trustDomain: 'example.org',
  issuer: 'https://login.example.org',
  upstreams: {
    inference: { host: 'inference.svc', port: 9001 },
    policy: { host: 'policy.svc', port: 9002 },
    audit: { host: 'audit.svc', port: 9003 },
    identity: { host: 'identity.svc', port: 9004 },
  },
  rateLimit: { maxTokens: 10, tokensPerFill: 5, fillInterval: '0.5s' },
};

function rejection(change: Partial<EnvoyRenderOptions>): { code?: string; message: string } {
  try {
    renderEnvoyConfig({ ...options, ...change });
  } catch (err) {
    return { code: errorCode(err), message: (err as Error).message };
  }
  return { message: 'rendered' };
}

describe('renderEnvoyConfig', () => {
  it('renders a bootstrap that validates for any valid options', () => {
    const config = renderEnvoyConfig(options);
    expect(validateEnvoyConfig(config).issues).toEqual([]);
    const text = JSON.stringify(config);
    expect(text).toContain('spiffe://example.org/svc/policy');
    expect(text).toContain('"uri":"https://identity.svc:9004/jwks"');
    expect(text).toContain('"fill_interval":"0.5s"');
  });

  it.each([
    [{ issuer: 'not a url' }, /option issuer is not a URL/],
    [{ issuer: 'http://login.example.org' }, /option issuer must be an https URL/],
    [{ listen: { host: '0.0.0.0', port: 0 } }, /option listen.port must be a port number/],
    [{ trustDomain: 'Bad Domain' }, /option trustDomain/],
    [{ samplingPercent: 101 }, /option samplingPercent/],
    [{ jwksPath: 'jwks' }, /option jwksPath must start with \//],
  ])('refuses %p, naming the option', (change, message) => {
    const result = rejection(change as Partial<EnvoyRenderOptions>);
    expect(result.code).toBe('ERR_ENVOY_RENDER_OPTIONS');
    expect(result.message).toMatch(message);
  });
});
