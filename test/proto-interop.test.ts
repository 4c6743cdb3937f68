/**
 * Wire compatibility of the Open Inference Protocol v2 file: a client built by another tool
 * (`@grpc/proto-loader`, the way KServe/Triton Node clients are built) calls a stub server
 * built from the ts-proto code generated from the same file.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {
  GRPCInferenceServiceService,
  type GRPCInferenceServiceServer,
  type ModelInferResponse,
} from '../gen/inference/grpc_service.ts';

const protoFile = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../proto/inference/grpc_service.proto',
);

// A stub that reflects what it received so the test sees what crossed the wire.
const stub: GRPCInferenceServiceServer = {
  serverLive: (_call, cb) => cb(null, { live: true }),
  serverReady: (_call, cb) => cb(null, { ready: true }),
  modelReady: (call, cb) => cb(null, { ready: call.request.name === 'iris' }),
  serverMetadata: (_call, cb) => cb(null, { name: 'stub', version: '1', extensions: ['bulwark'] }),
  modelMetadata: (call, cb) =>
    cb(null, {
      name: call.request.name,
      versions: ['1', '2'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
      outputs: [{ name: 'label', datatype: 'INT64', shape: [-1] }],
    }),
  modelInfer: (call, cb) => {
    const req = call.request;
    const response: ModelInferResponse = {
      modelName: req.modelName,
      modelVersion: req.modelVersion,
      id: req.id,
      parameters: {
        'bulwark.audit.leaf_index': { parameterChoice: { $case: 'int64Param', value: 42 } },
        'bulwark.audit.log_id': { parameterChoice: { $case: 'stringParam', value: 'log-1' } },
        echoed_flag: req.parameters['flag'] ?? { parameterChoice: undefined },
      },
      outputs: req.inputs.map((input) => ({
        name: `${input.name}_echo`,
        datatype: input.datatype,
        shape: input.shape,
        parameters: {},
        contents: input.contents,
      })),
      // Raw bytes go back reversed, so the client can tell they were really read.
      rawOutputContents: req.rawInputContents.map((raw) => Buffer.from(raw).reverse()),
    };
    cb(null, response);
  },
};

interface LoadedClient extends grpc.Client {
  [method: string]: unknown;
}

let server: grpc.Server;
let client: LoadedClient;

function call<T>(method: string, request: object): Promise<T> {
  return new Promise((resolve, reject) => {
    const fn = client[method] as (
      req: object,
      cb: (err: grpc.ServiceError | null, res: T) => void,
    ) => void;
    fn.call(client, request, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

beforeAll(async () => {
  server = new grpc.Server();
  server.addService(GRPCInferenceServiceService, stub);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  const definition = protoLoader.loadSync(protoFile, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    inference: {
      GRPCInferenceService: new (a: string, c: grpc.ChannelCredentials) => LoadedClient;
    };
  };
  client = new pkg.inference.GRPCInferenceService(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  );
});

afterAll(async () => {
  client.close();
  await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
});

test('health and metadata calls reach the ts-proto server under the public method names', async () => {
  expect(await call('ServerLive', {})).toEqual({ live: true });
  expect(await call('ServerReady', {})).toEqual({ ready: true });
  expect(await call('ModelReady', { name: 'iris', version: '' })).toEqual({ ready: true });
  expect(await call('ModelReady', { name: 'other' })).toEqual({ ready: false });
  const meta = await call<{ name: string; versions: string[]; inputs: unknown[] }>(
    'ModelMetadata',
    { name: 'iris' },
  );
  expect(meta.name).toBe('iris');
  expect(meta.versions).toEqual(['1', '2']);
  expect(meta.inputs).toEqual([{ name: 'input', datatype: 'FP32', shape: ['-1', '4'] }]);
  const server = await call<{ extensions: string[] }>('ServerMetadata', {});
  expect(server.extensions).toEqual(['bulwark']);
});

test('ModelInfer round-trips raw contents, typed contents, parameters and the id', async () => {
  const raw = Buffer.alloc(16);
  [5.1, 3.5, 1.4, 0.2].forEach((v, i) => raw.writeFloatLE(v, i * 4));
  const res = await call<{
    id: string;
    model_name: string;
    parameters: Record<string, Record<string, unknown>>;
    outputs: { name: string; datatype: string; shape: string[]; contents: null | object }[];
    raw_output_contents: Buffer[];
  }>('ModelInfer', {
    model_name: 'iris',
    model_version: '2',
    id: 'req-7',
    parameters: { flag: { bool_param: true } },
    inputs: [
      { name: 'input', datatype: 'FP32', shape: [1, 4] },
      {
        name: 'ids',
        datatype: 'INT64',
        shape: [2],
        contents: { int64_contents: ['9007199254740991', '-3'] },
      },
    ],
    raw_input_contents: [raw],
  });
  expect(res.id).toBe('req-7');
  expect(res.model_name).toBe('iris');
  expect(res.parameters['bulwark.audit.leaf_index']).toMatchObject({
    int64_param: '42',
    parameter_choice: 'int64_param',
  });
  expect(res.parameters['bulwark.audit.log_id']).toMatchObject({ string_param: 'log-1' });
  expect(res.parameters['echoed_flag']).toMatchObject({ bool_param: true });
  expect(res.outputs[0]).toMatchObject({ name: 'input_echo', datatype: 'FP32', shape: ['1', '4'] });
  expect(res.outputs[1]?.contents).toMatchObject({ int64_contents: ['9007199254740991', '-3'] });
  expect(res.raw_output_contents).toHaveLength(1);
  const back = Buffer.from(res.raw_output_contents[0]!).reverse();
  expect(back.equals(raw)).toBe(true);
  expect(back.readFloatLE(0)).toBeCloseTo(5.1, 5);
});
