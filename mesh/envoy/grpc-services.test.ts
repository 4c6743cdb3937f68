import { loadEnvoyGrpcService } from './grpc-services.ts';

test('loads an Envoy gRPC service from the shipped protos, once per process', () => {
  const als = loadEnvoyGrpcService(
    'envoy/service/accesslog/v3/als.proto',
    'envoy.service.accesslog.v3.AccessLogService',
  );
  expect(Object.keys(als.service)).toEqual(['StreamAccessLogs']);
  expect(als.service.StreamAccessLogs!.path).toBe(
    '/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs',
  );
  expect(
    loadEnvoyGrpcService(
      'envoy/service/accesslog/v3/als.proto',
      'envoy.service.accesslog.v3.AccessLogService',
    ),
  ).toBe(als);
});

test('a service name the proto does not define is a clear error', () => {
  expect(() =>
    loadEnvoyGrpcService(
      'envoy/service/auth/v3/external_auth.proto',
      'envoy.service.auth.v3.NoSuchService',
    ),
  ).toThrow(
    'envoy/service/auth/v3/external_auth.proto does not define the service envoy.service.auth.v3.NoSuchService',
  );
});
