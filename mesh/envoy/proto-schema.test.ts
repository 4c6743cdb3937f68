import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { errorCode } from '../errors.ts';
import { BOOTSTRAP_TYPE, createEnvoySchema, loadEnvoySchema } from './proto-schema.ts';

describe('Envoy proto schema', () => {
  it('loads the bootstrap and, on demand, the extension a typed_config names', () => {
    const schema = loadEnvoySchema();
    expect(schema.findMessage(BOOTSTRAP_TYPE)?.fullName).toBe(`.${BOOTSTRAP_TYPE}`);
    const jwt = schema.findMessage('envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication');
    expect(jwt?.fields['providers']).toBeDefined();
  });

  it('explains why a type cannot be resolved', () => {
    const schema = loadEnvoySchema();
    expect(schema.findMessage('envoy.extensions.filters.http.nope.v3.Nope')).toBeUndefined();
    expect(schema.whyMissing('envoy.extensions.filters.http.nope.v3.Nope')).toMatch(
      /no Envoy proto declares the package envoy.extensions.filters.http.nope.v3/,
    );
    expect(schema.findMessage('envoy.extensions.filters.http.router.v3.Routr')).toBeUndefined();
    expect(schema.whyMissing('envoy.extensions.filters.http.router.v3.Routr')).toMatch(
      /has no message Routr/,
    );
  });

  it('fails with a stable code when the protos are not there', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-no-protos-'));
    try {
      let thrown: unknown;
      try {
        createEnvoySchema(dir);
      } catch (err) {
        thrown = err;
      }
      expect(errorCode(thrown)).toBe('ERR_ENVOY_PROTOS_UNAVAILABLE');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
