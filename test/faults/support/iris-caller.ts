/**
 * One ModelInfer call on the demo Iris model, as a load-generator caller makes it: a real
 * Iris measurement as input, a bearer token, a deadline longer than any timeout inside the
 * mesh (so the caller always sees the service's own answer), and the audit receipt read back.
 */
import * as grpc from '@grpc/grpc-js';
import type {
  GRPCInferenceServiceClient,
  ModelInferRequest,
  ModelInferResponse,
} from '../../../gen/inference/grpc_service.ts';
import { irisDataset } from '../../../services/inference/demo/datasets.ts';
import { emptyContents } from '../../../services/inference/tensor/codec.ts';
import type { CallOutcome } from './load-generator.ts';

const ROWS = irisDataset().train.xs;

/** Longer than the inference deadline (2 s) plus the audit acknowledgement timeout (5 s). */
export const CALL_DEADLINE_MS = 20_000;

export function irisRequest(id: string, seq: number): ModelInferRequest {
  return {
    modelName: 'iris',
    modelVersion: '',
    id,
    parameters: {},
    outputs: [],
    rawInputContents: [],
    inputs: [
      {
        name: 'input',
        datatype: 'FP32',
        shape: [1, 4],
        parameters: {},
        contents: { ...emptyContents(), fp32Contents: ROWS[seq % ROWS.length]! },
      },
    ],
  };
}

/** Calls ModelInfer and reports the status and the receipt's leaf index. */
export function inferIris(
  client: GRPCInferenceServiceClient,
  token: string,
  id: string,
  seq: number,
): Promise<CallOutcome> {
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  return new Promise((resolve) => {
    client.modelInfer(
      irisRequest(id, seq),
      metadata,
      { deadline: Date.now() + CALL_DEADLINE_MS },
      (err: grpc.ServiceError | null, res?: ModelInferResponse) => {
        if (err) {
          resolve({ code: err.code, details: err.details });
          return;
        }
        const leaf = res?.parameters['bulwark.audit.leaf_index']?.parameterChoice;
        resolve({
          code: grpc.status.OK,
          details: '',
          ...(leaf?.$case === 'int64Param' ? { leafIndex: Number(leaf.value) } : {}),
        });
      },
    );
  });
}
