import { Client, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { pino } from 'pino';
import { AuditServiceService, GetInclusionProofRequest } from '../../gen/bulwark/audit/v1/audit.ts';
import { createTestPki, type TestPki } from '../ca/index.ts';
import { createMeshClient, createMeshServer, type MeshServer } from './index.ts';

// A client is not bound by the generated code: it can send any bytes.
const PATH = '/bulwark.audit.v1.AuditService/GetInclusionProof';
const raw = (bytes: Buffer) => bytes;

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
  });
  server.addService(AuditServiceService, {
    getInclusionProof: (
      call: { request: GetInclusionProofRequest },
      callback: (err: Partial<ServiceError> | null, value?: unknown) => void,
    ) => {
      handled.push(call.request.leafIndex);
      callback({ code: status.NOT_FOUND, details: 'no such leaf', metadata: new Metadata() });
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

test('a uint64 beyond 2^53 is refused as INVALID_ARGUMENT before any handler runs', async () => {
  const err = await send(varintField(1, 2n ** 60n));
  expect({ code: err.code, details: err.details }).toEqual({
    code: status.INVALID_ARGUMENT,
    details: 'request does not decode: an integer field is beyond ±(2^53 - 1)',
  });
  expect(handled).toEqual([]);
});

test('bytes that are not protobuf are refused as INVALID_ARGUMENT', async () => {
  const err = await send(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]));
  expect({ code: err.code, details: err.details }).toEqual({
    code: status.INVALID_ARGUMENT,
    details: 'request does not decode (malformed protobuf)',
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
