import {
  Client,
  Metadata,
  ServerInterceptingCall,
  status,
  type ServerDuplexStream,
  type ServerInterceptor,
  type ServerReadableStream,
  type ServerWritableStream,
  type ServiceDefinition,
  type ServiceError,
  type StatusObject,
  type sendUnaryData,
} from '@grpc/grpc-js';
import { pino } from 'pino';
import {
  AppendBatchRequest,
  AppendBatchResponse,
  AuditRecord,
  AuditServiceService,
  GetInclusionProofRequest,
  GetInclusionProofResponse,
} from '../../gen/bulwark/audit/v1/audit.ts';
import { createTestPki, type TestPki } from '../ca/index.ts';
import { createMeshClient, createMeshServer, type MeshServer } from './index.ts';

// A client is not bound by the generated code: it can send any bytes.
const PATH = '/bulwark.audit.v1.AuditService/GetInclusionProof';
const APPEND_BATCH = '/bulwark.audit.v1.AuditService/AppendBatch';
const raw = (bytes: Buffer) => bytes;

const TOO_BIG = 'request does not decode: an integer field is beyond ±(2^53 - 1)';
const MALFORMED = 'request does not decode (malformed protobuf)';
const GARBAGE = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]);

/** A varint field `number` holding `value` (protobuf wire type 0). */
function varintField(number: number, value: bigint): Buffer {
  const out = [number << 3];
  let v = value;
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}

/** A length-delimited field `number` (wire type 2) holding `bytes` (under 128 of them). */
const lenField = (number: number, bytes: Buffer) =>
  Buffer.concat([Buffer.from([(number << 3) | 2, bytes.length]), bytes]);

const probe = (leafIndex: number) =>
  Buffer.from(GetInclusionProofRequest.encode({ leafIndex, treeSize: 0 }).finish());
const leafOf = (bytes: Buffer) => GetInclusionProofRequest.decode(bytes).leafIndex;
const record = (latencyUs: number) =>
  Buffer.from(
    AppendBatchRequest.encode({ record: AuditRecord.fromPartial({ latencyUs }) }).finish(),
  );
// GetInclusionProofRequest.leaf_index and AuditRecord.latency_us are uint64 fields.
const probeTooBig = varintField(1, 2n ** 60n);
const recordTooBig = lenField(1, varintField(13, 2n ** 60n));
const leafData = Buffer.alloc(256 * 1024);

// Streaming methods no generated service of Bulwark has (the health Watch is the kit's own).
const codec = {
  requestSerialize: raw,
  requestDeserialize: (b: Buffer) => GetInclusionProofRequest.decode(b),
  responseSerialize: (v: GetInclusionProofRequest) =>
    Buffer.from(GetInclusionProofRequest.encode(v).finish()),
  responseDeserialize: raw,
};
const ProbeService = {
  watch: {
    path: '/bulwark.test.v1.Probe/Watch',
    requestStream: false,
    responseStream: true,
    ...codec,
  },
  echo: {
    path: '/bulwark.test.v1.Probe/Echo',
    requestStream: true,
    responseStream: true,
    ...codec,
    responseSerialize: (v: GetInclusionProofResponse) =>
      Buffer.from(GetInclusionProofResponse.encode(v).finish()),
  },
  collect: {
    path: '/bulwark.test.v1.Probe/Collect',
    requestStream: true,
    responseStream: false,
    ...codec,
  },
} satisfies ServiceDefinition;

/** What one handler invocation saw and did. */
interface Trace {
  seen: number[];
  ended: boolean;
  failure?: string;
  lateWriteErrors: boolean[];
  done: Promise<void>;
  finish(): void;
}
const traces: Trace[] = [];
function newTrace(): Trace {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = () => setImmediate(resolve)));
  const trace: Trace = { seen: [], ended: false, lateWriteErrors: [], done, finish };
  traces.push(trace);
  return trace;
}
const lastTrace = () => traces[traces.length - 1]!;

// Every status a handler (or the kit) sends on its way to the client, however many per call.
const statuses: { path: string; code: number; details: string }[] = [];
const recordStatuses: ServerInterceptor = (method, call) =>
  new ServerInterceptingCall(call, {
    sendStatus: (s, next) => {
      statuses.push({ path: method.path, code: s.code, details: s.details });
      next(s);
    },
  });
const statusesOf = (path: string) => statuses.filter((s) => s.path === path);

let pki: TestPki;
let server: MeshServer;
let client: Client;
const handled: number[] = [];

beforeAll(async () => {
  pki = await createTestPki({ services: ['audit', 'inference'] });
  const files = (name: string) => ({
    certFile: pki.services[name]!.certFile,
    keyFile: pki.services[name]!.keyFile,
    caFile: pki.caFile,
  });
  server = createMeshServer({
    tls: files('audit'),
    allowedPeers: [pki.services['inference']!.spiffeId],
    logger: pino({ level: 'silent' }),
    interceptors: [recordStatuses],
  });
  server.addService(AuditServiceService, {
    getInclusionProof: (
      call: { request: GetInclusionProofRequest },
      callback: (err: Partial<ServiceError> | null, value?: unknown) => void,
    ) => {
      handled.push(call.request.leafIndex);
      callback({ code: status.NOT_FOUND, details: 'no such leaf', metadata: new Metadata() });
    },
    // Shaped like the audit service's: records collected on 'data', appended on 'end' only.
    appendBatch: (
      call: ServerReadableStream<AppendBatchRequest, unknown>,
      callback: sendUnaryData<unknown>,
    ) => {
      const trace = newTrace();
      call.on('data', (m: AppendBatchRequest) => trace.seen.push(m.record!.latencyUs));
      call.on('end', () => {
        trace.ended = true;
        callback(
          null,
          AppendBatchResponse.fromPartial({
            receipts: trace.seen.map((leafIndex) => ({ leafIndex })),
          }),
        );
      });
      call.on('close', () => {
        // Answers after the call ended (twice): neither may throw or reach the client.
        callback(null, AppendBatchResponse.fromPartial({}));
        callback({ code: status.INTERNAL, details: 'late' });
        trace.finish();
      });
    },
  });
  server.addService(ProbeService, {
    watch: (call: ServerWritableStream<GetInclusionProofRequest, GetInclusionProofRequest>) => {
      // It starts only for a decodable request: one trace per start.
      newTrace().seen.push(call.request.leafIndex);
      call.write({ leafIndex: call.request.leafIndex, treeSize: 1 });
      call.write({ leafIndex: call.request.leafIndex, treeSize: 2 });
      call.end();
    },
    echo: (call: ServerDuplexStream<GetInclusionProofRequest, GetInclusionProofResponse>) => {
      const trace = newTrace();
      let late = false;
      const misbehave = () => {
        call.write(GetInclusionProofResponse.fromPartial({ leafIndex: 99 }), (err: unknown) =>
          trace.lateWriteErrors.push(err != null),
        );
        call.emit('error', { code: status.INTERNAL, details: 'late' });
        call.end();
      };
      call.on('data', (m: GetInclusionProofRequest) => {
        trace.seen.push(m.leafIndex);
        // Big enough to outrun HTTP/2 flow control: an echo is still being sent at the refusal.
        call.write(GetInclusionProofResponse.fromPartial({ leafIndex: m.leafIndex, leafData }));
      });
      call.on('end', () => {
        trace.ended = true;
        call.end();
      });
      call.on('error', (err: Partial<StatusObject>) => {
        // The refusal: respond at once, while the echoes may still be on their way out.
        if (late) return;
        late = true;
        trace.failure = `${err.code}`;
        misbehave();
      });
      call.on('close', () => {
        misbehave();
        trace.finish();
      });
    },
    // A slow reader: the stream reads ahead of it while it works on each message.
    collect: (
      call: ServerReadableStream<GetInclusionProofRequest, GetInclusionProofRequest>,
      callback: sendUnaryData<GetInclusionProofRequest>,
    ) => {
      const trace = newTrace();
      void (async () => {
        try {
          for await (const m of call as AsyncIterable<GetInclusionProofRequest>) {
            await new Promise((resolve) => setTimeout(resolve, 5));
            trace.seen.push(m.leafIndex);
          }
          trace.ended = true;
          callback(null, { leafIndex: trace.seen.length, treeSize: 0 });
        } catch (err) {
          trace.failure = (err as { code?: string }).code;
          callback({ code: status.INTERNAL, details: 'late' });
        }
        trace.finish();
      })();
    },
  });
  const { address } = await server.listen();
  client = createMeshClient(Client, {
    address,
    tls: files('inference'),
    expectedServer: pki.services['audit']!.spiffeId,
    logger: pino({ level: 'silent' }),
  });
});

afterAll(async () => {
  client?.close();
  await server?.shutdown(100);
  await pki?.cleanup();
});

function send(bytes: Buffer): Promise<ServiceError> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(PATH, raw, raw, bytes, (err) =>
      err ? resolve(err) : reject(new Error('expected a refusal')),
    ),
  );
}

/** A client stream of `messages`; resolves with the response or the refusal. */
function clientStream(path: string, messages: Buffer[]) {
  return new Promise<{ err: ServiceError | null; response?: Buffer }>((resolve) => {
    const call = client.makeClientStreamRequest(path, raw, raw, (err, response) =>
      resolve({ err, response }),
    );
    for (const m of messages) call.write(m);
    call.end();
  });
}

/** Everything a response stream delivers, then its status. */
function collect(stream: NodeJS.EventEmitter) {
  return new Promise<{ messages: number[]; status: StatusObject }>((resolve) => {
    const messages: number[] = [];
    stream.on('data', (m: Buffer) => messages.push(leafOf(m)));
    stream.on('error', () => undefined);
    stream.on('status', (s: StatusObject) => setImmediate(() => resolve({ messages, status: s })));
  });
}

const bidi = (messages: Buffer[]) => {
  const call = client.makeBidiStreamRequest(ProbeService.echo.path, raw, raw);
  const result = collect(call);
  for (const m of messages) call.write(m);
  call.end();
  return result;
};
const serverStream = (request: Buffer) =>
  collect(client.makeServerStreamRequest(ProbeService.watch.path, raw, raw, request));

describe('unary', () => {
  test('a uint64 beyond 2^53 is refused as INVALID_ARGUMENT before any handler runs', async () => {
    const err = await send(varintField(1, 2n ** 60n));
    expect({ code: err.code, details: err.details }).toEqual({
      code: status.INVALID_ARGUMENT,
      details: TOO_BIG,
    });
    expect(handled).toEqual([]);
  });

  test('bytes that are not protobuf are refused as INVALID_ARGUMENT', async () => {
    const err = await send(GARBAGE);
    expect({ code: err.code, details: err.details }).toEqual({
      code: status.INVALID_ARGUMENT,
      details: MALFORMED,
    });
    expect(handled).toEqual([]);
  });

  test('a well-formed request still reaches its handler, and the server keeps serving', async () => {
    const err = await send(
      Buffer.from(GetInclusionProofRequest.encode({ leafIndex: 7, treeSize: 9 }).finish()),
    );
    expect(err.code).toBe(status.NOT_FOUND);
    expect(handled).toEqual([7]);
  });
});

describe('client stream (AuditService/AppendBatch)', () => {
  async function expectHealthy() {
    const { err, response } = await clientStream(APPEND_BATCH, [record(5), record(6)]);
    expect(err).toBeNull();
    expect(lastTrace()).toMatchObject({ seen: [5, 6], ended: true });
    expect(AppendBatchResponse.decode(response!).receipts.map((r) => r.leafIndex)).toEqual([5, 6]);
  }

  test.each([
    ['a uint64 of 2^60', recordTooBig, TOO_BIG],
    ['bytes that are not protobuf', GARBAGE, MALFORMED],
  ])('%s after two good records ends the call as INVALID_ARGUMENT', async (_, bad, details) => {
    const before = statusesOf(APPEND_BATCH).length;
    const { err } = await clientStream(APPEND_BATCH, [record(1), record(2), bad, record(4)]);
    expect({ code: err?.code, details: err?.details }).toEqual({
      code: status.INVALID_ARGUMENT,
      details,
    });
    const trace = lastTrace();
    await trace.done;
    // The good records and nothing after; no 'end', so a batch handler appends none of them.
    expect(trace).toMatchObject({ seen: [1, 2], ended: false });
    // The handler's late answers sent no second status.
    expect(statusesOf(APPEND_BATCH).slice(before)).toEqual([
      { path: APPEND_BATCH, code: status.INVALID_ARGUMENT, details },
    ]);
    await expectHealthy();
  });

  test('a slow reader still gets every good message the stream read ahead for it', async () => {
    const path = ProbeService.collect.path;
    const before = statusesOf(path).length;
    const good = [1, 2, 3, 4, 5, 6].map(probe);
    const { err } = await clientStream(path, [...good, probeTooBig, probe(8)]);
    expect({ code: err?.code, details: err?.details }).toEqual({
      code: status.INVALID_ARGUMENT,
      details: TOO_BIG,
    });
    const trace = lastTrace();
    await trace.done;
    // Its loop then fails as when a client goes away mid-stream.
    expect(trace).toMatchObject({
      seen: [1, 2, 3, 4, 5, 6],
      ended: false,
      failure: 'ERR_STREAM_PREMATURE_CLOSE',
    });
    expect(statusesOf(path).slice(before)).toHaveLength(1);
    const healthy = await clientStream(path, [probe(1), probe(2)]);
    expect(healthy.err).toBeNull();
    expect(leafOf(healthy.response!)).toBe(2);
  });
});

describe('server stream', () => {
  test.each([
    ['a uint64 of 2^60', probeTooBig, TOO_BIG],
    ['bytes that are not protobuf', GARBAGE, MALFORMED],
  ])('%s is refused as INVALID_ARGUMENT before the handler starts', async (_, bad, details) => {
    const good = await serverStream(probe(3));
    expect(good).toEqual({ messages: [3, 3], status: expect.objectContaining({ code: 0 }) });
    const started = traces.length;
    const before = statusesOf(ProbeService.watch.path).length;
    const refused = await serverStream(bad);
    expect(refused.messages).toEqual([]);
    expect(refused.status).toMatchObject({ code: status.INVALID_ARGUMENT, details });
    expect(traces.length).toBe(started);
    expect(statusesOf(ProbeService.watch.path).slice(before)).toHaveLength(1);
    expect((await serverStream(probe(4))).status.code).toBe(status.OK);
    expect(lastTrace().seen).toEqual([4]);
  });
});

describe('bidirectional stream', () => {
  test.each([
    ['a uint64 of 2^60', probeTooBig, TOO_BIG],
    ['bytes that are not protobuf', GARBAGE, MALFORMED],
  ])('%s after two good messages ends the call as INVALID_ARGUMENT', async (_, bad, details) => {
    const path = ProbeService.echo.path;
    const before = statusesOf(path).length;
    const { messages, status: end } = await bidi([probe(1), probe(2), bad, probe(4)]);
    // The echoes written before the refusal still arrive, then the refusal.
    expect(messages).toEqual([1, 2]);
    expect(end).toMatchObject({ code: status.INVALID_ARGUMENT, details });
    const trace = lastTrace();
    await trace.done;
    expect(trace).toMatchObject({
      seen: [1, 2],
      ended: false,
      failure: `${status.INVALID_ARGUMENT}`,
    });
    // Its writes, error and end after the refusal (one set while an echo was still being sent):
    // nothing thrown, the writes failed, one status.
    expect(trace.lateWriteErrors).toEqual([true, true]);
    expect(statusesOf(path).slice(before)).toEqual([
      { path, code: status.INVALID_ARGUMENT, details },
    ]);
    const healthy = await bidi([probe(7), probe(8)]);
    expect(healthy).toEqual({ messages: [7, 8], status: expect.objectContaining({ code: 0 }) });
    expect(lastTrace()).toMatchObject({ seen: [7, 8], ended: true });
  });
});
