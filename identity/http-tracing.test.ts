import { routeOf } from './http-tracing.ts';

test('routes are templates: ids, codes and unknown paths never reach a span name', () => {
  expect(routeOf('/token')).toBe('/token');
  expect(routeOf('/.well-known/openid-configuration')).toBe('/.well-known/openid-configuration');
  expect(routeOf('/login/callback')).toBe('/login/callback');
  expect(routeOf('/login/Zx81kq0-PLm')).toBe('/login/:uid');
  expect(routeOf('/login/Zx81kq0-PLm/email')).toBe('/login/:uid/email');
  expect(routeOf('/auth/Zx81kq0-PLm')).toBe('/auth/:uid');
  expect(routeOf('/device/Zx81kq0-PLm/ABCD-EFGH')).toBe('/device/:uid/*');
  expect(routeOf('/login/x/eyJhbGciOi.eyJzdWIi.sig')).toBe('/login/:uid/*');
  expect(routeOf('/secret-code-123')).toBe('/*');
  expect(routeOf('/')).toBe('/*');
});
