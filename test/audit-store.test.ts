/**
 * One suite, every storage backend: SQLite (node:sqlite, committing on the caller's thread or on
 * a writer thread) and PostgreSQL (throwaway cluster).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashLeaf } from '../services/audit/merkle.ts';
import { openPostgresStore } from '../services/audit/store/postgres-store.ts';
import { openSqliteStore } from '../services/audit/store/sqlite-store.ts';
import {
  StoreConflictError,
  type AppendEntry,
  type AuditStore,
} from '../services/audit/store/types.ts';
import {
  appendToFrontier,
  EMPTY_FRONTIER,
  nodeKey,
  type Frontier,
} from '../services/audit/tree-nodes.ts';
import { startPostgres, type PostgresInstance } from './support/postgres.ts';

interface Backend {
  name: string;
  open(): Promise<AuditStore>;
  teardown(): Promise<void>;
}

let pgInstance: PostgresInstance | undefined;
let schemaCounter = 0;
const dirs: string[] = [];

const backends: Backend[] = [
  {
    name: 'sqlite',
    open: async () => {
      const dir = mkdtempSync(join(tmpdir(), 'audit-store-'));
      dirs.push(dir);
      return openSqliteStore({ path: join(dir, 'audit.db') });
    },
    teardown: async () => {
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  },
  {
    name: 'postgres',
    open: async () => {
      pgInstance ??= await startPostgres();
      return openPostgresStore({ connectionString: pgInstance.url, schema: `s${++schemaCounter}` });
    },
    teardown: async () => {
      await pgInstance?.stop();
      pgInstance = undefined;
    },
  },
];

function entry(index: number, extra: Partial<AppendEntry['fields']> = {}): AppendEntry {
  const data = Buffer.from(JSON.stringify({ i: index }));
  return {
    index,
    data,
    fields: {
      recordId: `r${index}`,
      timeMs: 1_000 * index,
      eventType: index % 2 ? 'authz' : 'inference',
      outcome: index % 3 ? 'success' : 'denied',
      actorSub: `acme/u${index % 4}`,
      org: index % 5 ? 'acme' : 'globex',
      modelName: 'iris',
      traceId: index === 7 ? 'a'.repeat(32) : null,
      ...extra,
    },
  };
}

async function appendRange(store: AuditStore, f: Frontier, count: number): Promise<Frontier> {
  const entries = Array.from({ length: count }, (_, k) => entry(f.size + k));
  const next = appendToFrontier(
    f,
    entries.map((e) => hashLeaf(e.data)),
  );
  await store.append(f.size, entries, next.nodes);
  return next.frontier;
}

describe.each(backends)('audit store: $name', (backend) => {
  let store: AuditStore;
  beforeEach(async () => {
    store = await backend.open();
  });
  afterEach(async () => {
    await store.close();
  });
  afterAll(async () => {
    await backend.teardown();
  });

  it('starts empty and appends leaves with their nodes atomically', async () => {
    expect(await store.size()).toBe(0);
    let f = await appendRange(store, EMPTY_FRONTIER, 5);
    f = await appendRange(store, f, 3);
    expect(await store.size()).toBe(8);
    const leaves = await store.readLeaves(0, 100);
    expect(leaves.map((l) => l.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(leaves[3]?.data.toString()).toBe('{"i":3}');
    expect(leaves[3]?.hash?.equals(Buffer.from(hashLeaf(Buffer.from('{"i":3}'))))).toBe(true);
    const nodes = await store.getNodes([
      { level: 3, index: 0 },
      { level: 1, index: 3 },
      { level: 4, index: 0 },
    ]);
    expect(nodes.get(nodeKey(3, 0))?.equals(Buffer.from(f.peaks[0] as Uint8Array))).toBe(true);
    expect(nodes.has(nodeKey(1, 3))).toBe(true);
    expect(nodes.has(nodeKey(4, 0))).toBe(false);
  });

  it('refuses an append that does not start at the committed size, and writes nothing', async () => {
    const f = await appendRange(store, EMPTY_FRONTIER, 2);
    const stale = appendToFrontier(EMPTY_FRONTIER, [hashLeaf(Buffer.from('x'))]);
    await expect(store.append(0, [entry(0)], stale.nodes)).rejects.toBeInstanceOf(
      StoreConflictError,
    );
    expect(await store.size()).toBe(2);
    expect((await store.readLeaves(0, 10)).length).toBe(2);
    // A duplicate node violates the key: the whole transaction rolls back.
    const next = appendToFrontier(f, [hashLeaf(Buffer.from('y'))]);
    await expect(store.append(2, [entry(2)], [...next.nodes, ...next.nodes])).rejects.toThrow();
    expect(await store.size()).toBe(2);
    expect((await store.readLeaves(0, 10)).length).toBe(2);
  });

  it('queries by every filter, in leaf order, bounded by the size and the limit', async () => {
    await appendRange(store, EMPTY_FRONTIER, 20);
    const idx = async (q: Partial<Parameters<AuditStore['query']>[0]>) =>
      (await store.query({ startIndex: 0, endIndex: 20, limit: 100, ...q })).map((l) => l.index);
    expect(await idx({ org: 'globex' })).toEqual([0, 5, 10, 15]);
    expect(await idx({ actorSub: 'acme/u1', eventType: 'authz' })).toEqual([1, 5, 9, 13, 17]);
    expect(await idx({ outcome: 'denied', endIndex: 10 })).toEqual([0, 3, 6, 9]);
    expect(await idx({ traceId: 'a'.repeat(32) })).toEqual([7]);
    expect(await idx({ fromTimeMs: 3_000, toTimeMs: 6_000 })).toEqual([3, 4, 5]);
    expect(await idx({ modelName: 'iris', startIndex: 18 })).toEqual([18, 19]);
    expect(await idx({ limit: 2, startIndex: 4 })).toEqual([4, 5]);
    expect(await idx({ modelName: "iris' OR 1=1 --" })).toEqual([]);
  });

  it('keeps checkpoints and metadata', async () => {
    expect(await store.latestCheckpoint()).toBeUndefined();
    await store.saveCheckpoint({ size: 3, root: Buffer.alloc(32, 3), note: 'n3', signedAtMs: 30 });
    await store.saveCheckpoint({ size: 1, root: Buffer.alloc(32, 1), note: 'n1', signedAtMs: 10 });
    expect((await store.latestCheckpoint())?.note).toBe('n3');
    expect((await store.listCheckpoints()).map((c) => c.size)).toEqual([1, 3]);
    expect((await store.listCheckpoints())[0]?.root.equals(Buffer.alloc(32, 1))).toBe(true);
    expect(await store.getMeta('k')).toBeUndefined();
    await store.setMeta('k', 'v1');
    await store.setMeta('k', 'v2');
    expect(await store.getMeta('k')).toBe('v2');
  });

  it('serialises concurrent writers: exactly one of two racing appends wins', async () => {
    const other = await backend.open();
    await other.close();
    const f = await appendRange(store, EMPTY_FRONTIER, 1);
    const a = appendToFrontier(f, [hashLeaf(Buffer.from('a'))]);
    const results = await Promise.allSettled([
      store.append(1, [entry(1)], a.nodes),
      store.append(1, [entry(1)], a.nodes),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(await store.size()).toBe(2);
  });
});
