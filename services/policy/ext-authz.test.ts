import { routeOf } from './ext-authz.ts';

describe('routeOf', () => {
  it('reads the model of gRPC inference calls from the x-bulwark-model header', () => {
    expect(
      routeOf('/inference.GRPCInferenceService/ModelInfer', { 'x-bulwark-model': 'iris' }),
    ).toEqual({
      model: 'iris',
      action: 'infer',
    });
    expect(
      routeOf('/inference.GRPCInferenceService/ModelMetadata', {
        'x-bulwark-model': 'iris',
        'x-bulwark-model-version': '3',
      }),
    ).toEqual({ model: 'iris', version: '3', action: 'read' });
    expect(
      routeOf('/bulwark.model.v1.ModelService/Promote', { 'x-bulwark-model': 'credit' }),
    ).toEqual({
      model: 'credit',
      action: 'admin',
    });
  });

  it('reads REST Open Inference Protocol paths', () => {
    expect(routeOf('/v2/models/iris/infer', {})).toEqual({ model: 'iris', action: 'infer' });
    expect(routeOf('/v2/models/iris/versions/2/infer?x=1', {})).toEqual({
      model: 'iris',
      version: '2',
      action: 'infer',
    });
    expect(routeOf('/v2/models/iris/ready', {})).toEqual({ model: 'iris', action: 'read' });
  });

  it.each([
    ['', {}, 'route is not served through the gateway'],
    ['/inference.GRPCInferenceService/ModelInfer', {}, 'missing x-bulwark-model header'],
    [
      '/inference.GRPCInferenceService/ModelInfer',
      { 'x-bulwark-model': 'Iris' },
      'malformed model name',
    ],
    [
      '/inference.GRPCInferenceService/ModelInfer',
      { 'x-bulwark-model': 'iris', 'x-bulwark-model-version': '../1' },
      'malformed model version',
    ],
    ['/v2/models/../../admin/infer', {}, 'route is not served through the gateway'],
    ['/v2/models/iris%2Fx/infer', {}, 'malformed model name'],
    ['/inference.GRPCInferenceService/ServerLive', {}, 'route is not served through the gateway'],
    ['constructor', { 'x-bulwark-model': 'iris' }, 'route is not served through the gateway'],
    ['__proto__', { 'x-bulwark-model': 'iris' }, 'route is not served through the gateway'],
  ])('refuses %s %j', (path, headers, message) => {
    expect(routeOf(path, headers as Record<string, string>)).toBe(message);
  });
});
