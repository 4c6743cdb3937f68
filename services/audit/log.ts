/**
 * The audit log engine, independent of gRPC: validation, group commit, checkpoint signing,
 * proofs, queries and verification over an {@link AuditStore}.
 *
 * Group commit: an append to an idle log commits on the next turn of the event loop (no timer);
 * appends that arrive while a commit is in flight gather into the next batch (up to
 * `maxBatch`), committed as soon as the previous one is durable. One store transaction commits
 * a whole batch and only after it is durable are the callers answered. A failed commit answers every caller in
 * the batch with `ERR_AUDIT_STORE_UNAVAILABLE` and leaves the in-memory tree untouched.
 *
 * Checkpoints: a new checkpoint is signed only after a consistency proof built from the stored
 * nodes verifies against the last signed checkpoint (kept in the store and in a state file
 * outside it), so the log never signs two inconsistent trees.
 *
 * @example
 * ```ts
 * const log = await openAuditLog({ store, signingKey, origin: 'bulwark.local/audit' });
 * const receipt = await log.append(record, 'spiffe://bulwark.local/svc/inference');
 * const cp = await log.checkpoint();
 * ```
 */
import { renameSync, writeFileSync, readFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { AuditRecord } from '../../gen/bulwark/audit/v1/audit.ts';
import { AuditError } from './errors.ts';
import { createGroupCommitter } from './group-commit.ts';
import {
  consistencyRanges,
  hashesEqual,
  hashLeaf,
  inclusionRanges,
  verifyConsistency,
  type Hash,
} from './merkle.ts';
import {
  createNoteSigner,
  formatCheckpoint,
  openCheckpoint,
  parseVerifierKey,
  signNote,
  type NoteSigner,
} from './note.ts';
import {
  DEFAULT_RECORD_LIMITS,
  recordToLeaf,
  type LeafRecord,
  type RecordLimits,
} from './record.ts';
import {
  appendToFrontier,
  EMPTY_FRONTIER,
  frontierRoot,
  hashRange,
  nodeKey,
  nodesForRanges,
  rangeNodes,
  type Frontier,
} from './tree-nodes.ts';
import {
  StoreConflictError,
  type AppendEntry,
  type AuditStore,
  type LeafQuery,
  type StoredLeaf,
} from './store/types.ts';
import { verifyStore, type VerifyResult } from './verify.ts';

export interface AuditLogOptions {
  store: AuditStore;
  /** Ed25519 private key that signs checkpoints. */
  signingKey: KeyObject;
  /** Checkpoint origin and signed-note key name, e.g. `bulwark.local/audit`. */
  origin: string;
  /** File that keeps the last signed checkpoint outside the database. Optional but advised. */
  checkpointStatePath?: string;
  /**
   * Longest a batch may gather, in ms (0-2). Kept for compatibility: the committer never waits
   * on a timer (a batch gathers only while the previous commit is in flight), so it is always met.
   */
  batchWindowMs?: number;
  /** Most records in one commit (one submission larger than this still commits alone). Default 1024. */
  maxBatch?: number;
  limits?: RecordLimits;
  /** Verify the whole log before serving. Default true. */
  verifyOnStart?: boolean;
  clock?: () => Date;
  logger?: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** Told about every commit (for metrics): records in it, seconds it took, whether it failed. */
  onCommit?: (event: { records: number; seconds: number; ok: boolean; treeSize: number }) => void;
}

export interface AppendReceipt {
  id: string;
  leafIndex: number;
  treeSize: number;
  leafHash: Hash;
}

export interface SignedCheckpoint {
  size: number;
  root: Hash;
  note: string;
}

export interface QueryFilter extends Omit<LeafQuery, 'endIndex' | 'limit'> {
  limit: number;
}

export interface AuditLog {
  readonly origin: string;
  readonly verifierKey: string;
  /** Committed tree size. */
  size(): number;
  append(record: AuditRecord | undefined, submittedBy?: string): Promise<AppendReceipt>;
  /** Validates every record first (none is appended when one is invalid), commits them together. */
  appendMany(
    records: ReadonlyArray<AuditRecord | undefined>,
    submittedBy?: string,
  ): Promise<AppendReceipt[]>;
  /** The latest signed checkpoint, signing a new one when the tree grew (or `fresh`). */
  checkpoint(fresh?: boolean): Promise<SignedCheckpoint>;
  inclusionProof(
    index: number,
    treeSize?: number,
  ): Promise<{ treeSize: number; hashes: Hash[]; leaf: StoredLeaf; checkpoint?: string }>;
  consistencyProof(
    firstSize: number,
    secondSize?: number,
  ): Promise<{ firstSize: number; secondSize: number; hashes: Hash[] }>;
  query(filter: QueryFilter): Promise<StoredLeaf[]>;
  verify(): Promise<VerifyResult>;
  /** Why the log refuses to sign, when it does. */
  integrityFailure(): string | undefined;
  close(): Promise<void>;
}

interface Prepared {
  leaf: LeafRecord;
  data: Buffer;
  hash: Hash;
}

function writeFileDurably(path: string, content: string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  const fd = openSync(tmp, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

async function loadFrontier(store: AuditStore, size: number): Promise<Frontier> {
  if (size === 0) return EMPTY_FRONTIER;
  const ids = rangeNodes(0, size);
  const nodes = await store.getNodes(ids);
  const peaks = ids.map(({ level, index }) => {
    const h = nodes.get(nodeKey(level, index));
    if (!h)
      throw new AuditError('ERR_AUDIT_INTEGRITY', `tree node ${nodeKey(level, index)} is missing`);
    return h;
  });
  return { size, peaks };
}

/** Opens the log over a store: loads the tree edge, checks it against the last signed checkpoint. */
export async function openAuditLog(options: AuditLogOptions): Promise<AuditLog> {
  const {
    store,
    signingKey,
    origin,
    checkpointStatePath,
    maxBatch = 1024,
    limits = DEFAULT_RECORD_LIMITS,
    verifyOnStart = true,
    clock = () => new Date(),
    logger,
    onCommit,
  } = options;
  const batchWindowMs = options.batchWindowMs ?? 0;
  if (!(batchWindowMs >= 0 && batchWindowMs <= 2))
    throw new RangeError('batchWindowMs must be between 0 and 2');
  if (!(Number.isInteger(maxBatch) && maxBatch >= 1))
    throw new RangeError('maxBatch must be a positive integer');
  const signer: NoteSigner = createNoteSigner(origin, signingKey);
  const verifier = parseVerifierKey(signer.verifierKey);

  let frontier: Frontier = EMPTY_FRONTIER;
  let lastSigned: SignedCheckpoint | undefined;
  let integrity: string | undefined;
  let needsReload = true;
  let closed = false;

  const fail = (reason: string): AuditError => {
    if (!integrity) logger?.error({ reason }, 'audit log integrity failure: refusing to sign');
    integrity ??= reason;
    return new AuditError('ERR_AUDIT_INTEGRITY', `audit log integrity failure: ${integrity}`);
  };

  const reload = async () => {
    frontier = await loadFrontier(store, await store.size());
    needsReload = false;
  };

  // --- startup checks -------------------------------------------------------------------
  const storedKey = await store.getMeta('verifier_key');
  if (storedKey === undefined) await store.setMeta('verifier_key', signer.verifierKey);
  else if (storedKey !== signer.verifierKey)
    logger?.warn({ storedKey }, 'audit log was signed by another key before');
  if ((await store.getMeta('origin')) === undefined) await store.setMeta('origin', origin);
  try {
    await reload();
  } catch (err) {
    if (!(err instanceof AuditError)) throw err;
    fail(err.message);
  }
  const candidates: string[] = [];
  const latest = await store.latestCheckpoint();
  if (latest) candidates.push(latest.note);
  if (checkpointStatePath) {
    try {
      candidates.push(readFileSync(checkpointStatePath, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  for (const note of candidates) {
    try {
      const cp = openCheckpoint(note, verifier, origin);
      if (!lastSigned || cp.size > lastSigned.size)
        lastSigned = { size: cp.size, root: cp.root, note };
    } catch (err) {
      fail(`a stored checkpoint does not verify: ${(err as Error).message}`);
    }
  }
  if (lastSigned && !integrity) {
    if (lastSigned.size > frontier.size) {
      fail(
        `the log has ${frontier.size} leaves but its last signed checkpoint has ${lastSigned.size}`,
      );
    } else {
      const ids = rangeNodes(0, lastSigned.size);
      const nodes = await store.getNodes(ids);
      try {
        const root = hashRange(0, lastSigned.size, (l, i) => nodes.get(nodeKey(l, i)));
        if (!hashesEqual(root, lastSigned.root))
          fail(`the stored tree does not match the checkpoint of size ${lastSigned.size}`);
      } catch (err) {
        fail((err as Error).message);
      }
    }
  }
  if (verifyOnStart && !integrity) {
    const result = await verifyStore(store, {
      verifier,
      origin,
      ...(lastSigned ? { trustedCheckpoint: lastSigned.note } : {}),
    });
    if (!result.ok) fail(result.reason ?? 'verification failed');
  }

  // --- group commit ---------------------------------------------------------------------
  const commitBatch = async (items: Prepared[]): Promise<AppendReceipt[]> => {
    const started = performance.now();
    const report = (ok: boolean) =>
      onCommit?.({
        records: items.length,
        seconds: (performance.now() - started) / 1000,
        ok,
        treeSize: frontier.size,
      });
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          if (needsReload) await reload();
          const from = frontier.size;
          const next = appendToFrontier(
            frontier,
            items.map((i) => i.hash),
          );
          const entries: AppendEntry[] = items.map((it, k) => ({
            index: from + k,
            data: it.data,
            fields: {
              recordId: it.leaf.id,
              timeMs: Date.parse(it.leaf.time),
              eventType: it.leaf.eventType,
              outcome: it.leaf.outcome,
              actorSub: it.leaf.actor.sub ?? null,
              org: it.leaf.actor.org ?? null,
              modelName: it.leaf.target?.modelName ?? null,
              traceId: it.leaf.traceId ?? null,
            },
          }));
          await store.append(from, entries, next.nodes);
          frontier = next.frontier;
          report(true);
          return items.map((it, k) => ({
            id: it.leaf.id,
            leafIndex: from + k,
            treeSize: next.frontier.size,
            leafHash: it.hash,
          }));
        } catch (err) {
          // Another writer (a PostgreSQL replica) moved the tree: reload and retry.
          if (err instanceof StoreConflictError && attempt < 5) {
            needsReload = true;
            continue;
          }
          throw err;
        }
      }
    } catch (err) {
      // The commit may or may not have happened (a lost connection): re-read before the next one.
      needsReload = true;
      report(false);
      logger?.error(
        { err: { message: (err as Error).message }, records: items.length },
        'audit append failed: storage unavailable',
      );
      throw new AuditError(
        'ERR_AUDIT_STORE_UNAVAILABLE',
        'audit storage is unavailable; the record was not appended',
        { cause: err },
      );
    }
  };
  const committer = createGroupCommitter({
    maxBatch,
    commit: commitBatch,
  });

  const enqueue = (items: Prepared[]): Promise<AppendReceipt[]> => {
    if (closed) return Promise.reject(new AuditError('ERR_AUDIT_CLOSED', 'audit log is closed'));
    if (integrity)
      return Promise.reject(
        new AuditError('ERR_AUDIT_INTEGRITY', `audit log integrity failure: ${integrity}`),
      );
    return committer.submit(items);
  };

  const prepare = (record: AuditRecord | undefined, submittedBy: string | undefined): Prepared => {
    const { leaf, data } = recordToLeaf(record, {
      now: clock(),
      ...(submittedBy ? { submittedBy } : {}),
      limits,
    });
    return { leaf, data, hash: hashLeaf(data) };
  };

  // --- checkpoints ----------------------------------------------------------------------
  let signing: Promise<SignedCheckpoint> | undefined;

  const signNow = async (): Promise<SignedCheckpoint> => {
    if (integrity)
      throw new AuditError('ERR_AUDIT_INTEGRITY', `audit log integrity failure: ${integrity}`);
    if (needsReload || (store.kind === 'postgres' && (await store.size()) !== frontier.size))
      await reload();
    const size = frontier.size;
    const root = frontierRoot(frontier);
    if (lastSigned) {
      if (size < lastSigned.size)
        throw fail(`the tree shrank below its last signed size ${lastSigned.size}`);
      if (size === lastSigned.size) {
        if (!hashesEqual(root, lastSigned.root))
          throw fail(`the tree of size ${size} no longer matches its checkpoint`);
        return lastSigned;
      }
      const ranges = consistencyRanges(lastSigned.size, size);
      const nodes = await store.getNodes(nodesForRanges(ranges));
      let proof: Hash[];
      try {
        proof = ranges.map(([s, e]) => hashRange(s, e, (l, i) => nodes.get(nodeKey(l, i))));
      } catch (err) {
        throw fail((err as Error).message);
      }
      if (!verifyConsistency(lastSigned.size, size, lastSigned.root, root, proof)) {
        throw fail(
          `the stored tree is not consistent with the checkpoint of size ${lastSigned.size}`,
        );
      }
    }
    const note = signNote(formatCheckpoint({ origin, size, root }), [signer]);
    // The state file first: if we crash before the store write, startup still knows what we signed.
    if (checkpointStatePath) writeFileDurably(checkpointStatePath, note);
    await store.saveCheckpoint({
      size,
      root: Buffer.from(root),
      note,
      signedAtMs: clock().getTime(),
    });
    lastSigned = { size, root, note };
    return lastSigned;
  };

  const checkpoint = async (fresh = true): Promise<SignedCheckpoint> => {
    if (!fresh && lastSigned) return lastSigned;
    while (signing) await signing.catch(() => undefined);
    if (lastSigned && lastSigned.size === frontier.size && !needsReload) return lastSigned;
    signing = signNow();
    try {
      return await signing;
    } finally {
      signing = undefined;
    }
  };

  const readNodes = async (ranges: ReturnType<typeof inclusionRanges>) => {
    const nodes = await store.getNodes(nodesForRanges(ranges));
    try {
      return ranges.map(([s, e]) => hashRange(s, e, (l, i) => nodes.get(nodeKey(l, i))));
    } catch (err) {
      throw fail((err as Error).message);
    }
  };

  // Reads that fail in the store are the store being unavailable, not an internal error.
  const guarded =
    <A extends unknown[], R>(what: string, fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      try {
        return await fn(...args);
      } catch (err) {
        if (err instanceof AuditError) throw err;
        logger?.error(
          { err: { message: (err as Error).message } },
          `audit ${what} failed: storage unavailable`,
        );
        throw new AuditError('ERR_AUDIT_STORE_UNAVAILABLE', 'audit storage is unavailable', {
          cause: err,
        });
      }
    };

  const checkSize = (name: string, v: number) => {
    if (!Number.isSafeInteger(v) || v < 0)
      throw new AuditError('ERR_AUDIT_INVALID_REQUEST', `${name} is out of range`);
  };

  return {
    origin,
    verifierKey: signer.verifierKey,
    size: () => frontier.size,
    append: async (record, submittedBy) => {
      const [receipt] = await enqueue([prepare(record, submittedBy)]);
      return receipt as AppendReceipt;
    },
    appendMany: async (records, submittedBy) => {
      if (records.length === 0) return [];
      return enqueue(records.map((r) => prepare(r, submittedBy)));
    },
    checkpoint: guarded('checkpoint', checkpoint),
    inclusionProof: guarded('inclusion proof', async (index: number, treeSize = 0) => {
      checkSize('leaf_index', index);
      checkSize('tree_size', treeSize);
      let cpNote: string | undefined;
      let size = treeSize;
      if (size === 0) {
        let cp = await checkpoint(false);
        if (index >= cp.size) cp = await checkpoint(true);
        size = cp.size;
        cpNote = cp.note;
      }
      if (size > frontier.size || index >= size) {
        throw new AuditError(
          'ERR_AUDIT_NOT_FOUND',
          `leaf ${index} is not in a tree of size ${size} (log size ${frontier.size})`,
        );
      }
      const hashes = await readNodes(inclusionRanges(index, size));
      const [leaf] = await store.readLeaves(index, index + 1);
      if (!leaf) throw fail(`leaf ${index} is missing`);
      return { treeSize: size, hashes, leaf, ...(cpNote ? { checkpoint: cpNote } : {}) };
    }),
    consistencyProof: guarded('consistency proof', async (firstSize: number, secondSize = 0) => {
      checkSize('first_size', firstSize);
      checkSize('second_size', secondSize);
      const second = secondSize === 0 ? (await checkpoint(false)).size : secondSize;
      if (firstSize > second || second > frontier.size) {
        throw new AuditError(
          'ERR_AUDIT_NOT_FOUND',
          `sizes ${firstSize}..${second} are not within the log size ${frontier.size}`,
        );
      }
      return {
        firstSize,
        secondSize: second,
        hashes: await readNodes(consistencyRanges(firstSize, second)),
      };
    }),
    query: guarded('query', async (filter: QueryFilter) =>
      store.query({ ...filter, endIndex: frontier.size }),
    ),
    verify: guarded('verify', async () => {
      // Appends may land while this runs: rows past the size read at the start are expected.
      const result = await verifyStore(store, {
        verifier,
        origin,
        checkExtraRows: false,
        ...(lastSigned ? { trustedCheckpoint: lastSigned.note } : {}),
      });
      if (!result.ok) fail(result.reason ?? 'verification failed');
      return result;
    }),
    integrityFailure: () => integrity,
    close: async () => {
      closed = true;
      await committer.drain();
      await store.close();
    },
  };
}
