import { status } from '@grpc/grpc-js';
import { BulwarkError } from '../errors.ts';

/** Stable codes of {@link MeshError}. */
export type MeshErrorCode =
  | 'ERR_MESH_INVALID_OPTION'
  | 'ERR_MESH_CERTIFICATE_UNREADABLE'
  | 'ERR_MESH_PEER_UNAUTHENTICATED'
  | 'ERR_MESH_PEER_NOT_ALLOWED'
  | 'ERR_MESH_SERVER_IDENTITY_MISMATCH'
  | 'ERR_MESH_NOT_LISTENING'
  | 'ERR_MESH_SHUTTING_DOWN';

const statuses: Record<MeshErrorCode, status> = {
  ERR_MESH_INVALID_OPTION: status.INVALID_ARGUMENT,
  ERR_MESH_CERTIFICATE_UNREADABLE: status.UNAVAILABLE,
  ERR_MESH_PEER_UNAUTHENTICATED: status.UNAUTHENTICATED,
  ERR_MESH_PEER_NOT_ALLOWED: status.UNAUTHENTICATED,
  ERR_MESH_SERVER_IDENTITY_MISMATCH: status.UNAVAILABLE,
  ERR_MESH_NOT_LISTENING: status.FAILED_PRECONDITION,
  ERR_MESH_SHUTTING_DOWN: status.UNAVAILABLE,
};

/**
 * Error of the mesh service kit: bad options, unreadable certificate files, refused peers.
 * Its message is safe to send to a caller; details for operators go to the log.
 */
export class MeshError extends BulwarkError<MeshErrorCode> {
  constructor(code: MeshErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, statuses[code], options);
  }
}
