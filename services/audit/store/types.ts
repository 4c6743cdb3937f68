import type { NodeId, TreeNode } from '../tree-nodes.ts';

/** Columns kept beside each leaf for queries. The leaf data stays the source of truth. */
export interface LeafFields {
  recordId: string;
  timeMs: number;
  eventType: string;
  outcome: string;
  actorSub: string | null;
  org: string | null;
  modelName: string | null;
  traceId: string | null;
}

export interface AppendEntry {
  index: number;
  data: Uint8Array;
  fields: LeafFields;
}

export interface StoredLeaf {
  index: number;
  data: Buffer;
  /** Stored level-0 node (leaf hash), when present; used by verification. */
  hash?: Buffer | undefined;
}

export interface StoredCheckpoint {
  size: number;
  root: Buffer;
  /** The whole signed note. */
  note: string;
  signedAtMs: number;
}

export interface LeafQuery {
  startIndex: number;
  /** Leaves strictly before this index (the tree size when the query started). */
  endIndex: number;
  fromTimeMs?: number | undefined;
  toTimeMs?: number | undefined;
  actorSub?: string | undefined;
  org?: string | undefined;
  modelName?: string | undefined;
  eventType?: string | undefined;
  outcome?: string | undefined;
  traceId?: string | undefined;
  limit: number;
}

/**
 * Storage of the log. Every implementation passes the same suite (`test/audit-store.test.ts`).
 * `append` is one durable transaction: either every leaf, node and the new size is committed
 * (and fsync'd) or nothing is.
 */
export interface AuditStore {
  readonly kind: 'sqlite' | 'postgres';
  /** The SQLite database file, when there is one (offline verification reads it in parallel). */
  readonly path?: string;
  /** Committed tree size. */
  size(): Promise<number>;
  /**
   * Appends leaves `[from, from + entries.length)` and their tree nodes. Throws
   * {@link StoreConflictError} when the committed size is not `from` (another writer won).
   */
  append(from: number, entries: readonly AppendEntry[], nodes: readonly TreeNode[]): Promise<void>;
  /** Reads tree nodes; missing ones are absent from the map (keys from `nodeKey`). */
  getNodes(ids: readonly NodeId[]): Promise<Map<string, Buffer>>;
  /** Stored nodes of one level with index in `[start, end)`, by index. */
  readNodeRange(level: number, start: number, end: number): Promise<Map<number, Buffer>>;
  /** Leaves with index in `[start, end)`, ascending, each with its stored leaf hash. */
  readLeaves(start: number, end: number): Promise<StoredLeaf[]>;
  /** Leaves matching a query, ascending by index. */
  query(q: LeafQuery): Promise<StoredLeaf[]>;
  saveCheckpoint(cp: StoredCheckpoint): Promise<void>;
  /** Signed checkpoints, ascending by size. */
  listCheckpoints(): Promise<StoredCheckpoint[]>;
  latestCheckpoint(): Promise<StoredCheckpoint | undefined>;
  getMeta(key: string): Promise<string | undefined>;
  setMeta(key: string, value: string): Promise<void>;
  close(): Promise<void>;
}

/** The committed size moved under us: reload state and retry. */
export class StoreConflictError extends Error {
  override name = 'StoreConflictError';
}
