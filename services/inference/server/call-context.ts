import type { Metadata } from '@grpc/grpc-js';
import { peerIdentity } from '../../../mesh/kit/index.ts';
import type { CallContext } from './infer-pipeline.ts';

type GrpcCall = Parameters<typeof peerIdentity>[0] & {
  metadata: Metadata;
  getDeadline(): Date | number;
};

/** Reads what the pipeline needs from a grpc-js server call. */
export function callContext(call: unknown): CallContext {
  const c = call as GrpcCall;
  const d = c.getDeadline();
  const deadline = d instanceof Date ? d.getTime() : d;
  return {
    metadata: c.metadata,
    peer: peerIdentity(c),
    deadline: Number.isFinite(deadline) ? deadline : Infinity,
  };
}
