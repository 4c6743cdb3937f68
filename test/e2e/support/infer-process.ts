/**
 * A partner's program in its own process: the generated ts-proto client of the Open Inference
 * Protocol calls ModelInfer over TLS with a bearer token and a W3C `traceparent`, as the
 * generated-client snippet `bulwark up` prints does. Run with Node 24 on this file:
 *
 *   INFER_ADDRESS=127.0.0.1:7443 INFER_CA_FILE=ca.crt INFER_TOKEN=<jwt> INFER_MODEL=iris \
 *   INFER_ROW='[5.1,3.5,1.4,0.2]' [INFER_TRACEPARENT=00-...-01] node infer-process.ts
 *
 * The token comes in the environment (never argv, which other users can read). Prints one JSON
 * line: `{ "ok": true, "label": [0], "parameters": {...} }` or `{ "ok": false, "code": 7, ... }`.
 */
import { readFileSync } from 'node:fs';
import { credentials, Metadata } from '@grpc/grpc-js';
import {
  GRPCInferenceServiceClient,
  ModelInferRequest,
} from '../../../gen/inference/grpc_service.ts';

const env = (name: string) => {
  const value = process.env[name];
  if (!value) {
    process.stderr.write(`infer-process: ${name} is required\n`);
    process.exit(2);
  }
  return value;
};

const row = JSON.parse(env('INFER_ROW')) as number[];
const client = new GRPCInferenceServiceClient(
  env('INFER_ADDRESS'),
  credentials.createSsl(readFileSync(env('INFER_CA_FILE'))),
  { 'grpc.ssl_target_name_override': 'localhost' },
);
const metadata = new Metadata();
metadata.set('authorization', `Bearer ${env('INFER_TOKEN')}`);
if (process.env.INFER_TRACEPARENT) metadata.set('traceparent', process.env.INFER_TRACEPARENT);
const request = ModelInferRequest.fromPartial({
  modelName: env('INFER_MODEL'),
  inputs: [
    { name: 'input', datatype: 'FP32', shape: [1, row.length], contents: { fp32Contents: row } },
  ],
});
client.modelInfer(request, metadata, { deadline: Date.now() + 15_000 }, (err, res) => {
  client.close();
  if (err) {
    process.stdout.write(
      `${JSON.stringify({ ok: false, code: err.code, details: err.details })}\n`,
    );
    return;
  }
  const parameters = Object.fromEntries(
    Object.entries(res!.parameters).map(([k, v]) => [k, v.parameterChoice?.value]),
  );
  const label = res!.outputs.find((o) => o.name === 'label')?.contents?.int64Contents.map(Number);
  // int64 parameters may arrive as bigint, which JSON cannot hold.
  const json = JSON.stringify({ ok: true, label, parameters }, (_k, v: unknown) =>
    typeof v === 'bigint' ? Number(v) : v,
  );
  process.stdout.write(`${json}\n`);
});
