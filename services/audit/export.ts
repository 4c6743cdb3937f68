/**
 * JSON Lines export of the log for a SIEM, and reading it back for offline verification.
 *
 * Line 1: `{"type":"checkpoint","origin":...,"verifierKey":...,"checkpoint":<signed note>}`.
 * Then one line per leaf: `{"type":"leaf","index":n,"leafHash":<hex>,"record":{...}}`, where
 * `record` is the leaf object itself: its RFC 8785 canonical form is the exact leaf data.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { canonicalBytes } from './jcs.ts';
import { hashLeaf } from './merkle.ts';
import type { AuditStore, StoredLeaf } from './store/types.ts';

export interface ExportHeader {
  type: 'checkpoint';
  origin: string;
  verifierKey: string;
  checkpoint: string;
}

/** Writes the export; `write` receives whole lines. Returns the number of leaves written. */
export async function exportLog(
  store: AuditStore,
  header: Omit<ExportHeader, 'type'>,
  size: number,
  write: (line: string) => void | Promise<void>,
  chunkSize = 10_000,
): Promise<number> {
  await write(`${JSON.stringify({ type: 'checkpoint', ...header })}\n`);
  let n = 0;
  for (let start = 0; start < size; start += chunkSize) {
    const leaves = await store.readLeaves(start, Math.min(size, start + chunkSize));
    const out = leaves.map(
      (l) =>
        `{"type":"leaf","index":${l.index},"leafHash":"${Buffer.from(hashLeaf(l.data)).toString('hex')}","record":${l.data.toString('utf8')}}\n`,
    );
    await write(out.join(''));
    n += leaves.length;
  }
  return n;
}

/** Reads an export: its header, then its leaves in chunks (each with its exported leaf hash). */
export async function readExport(
  file: string,
): Promise<{ header: ExportHeader; leaves: AsyncIterable<StoredLeaf[]> }> {
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity })[
    Symbol.asyncIterator
  ]();
  const first = await lines.next();
  if (first.done) throw new Error(`${file} is empty`);
  const header = JSON.parse(first.value) as ExportHeader;
  if (header.type !== 'checkpoint' || typeof header.checkpoint !== 'string') {
    throw new Error(`${file} does not start with a checkpoint line`);
  }
  async function* chunks(): AsyncIterable<StoredLeaf[]> {
    let chunk: StoredLeaf[] = [];
    for (let next = await lines.next(); !next.done; next = await lines.next()) {
      if (next.value.trim() === '') continue;
      const line = JSON.parse(next.value) as { index: number; leafHash?: string; record: unknown };
      chunk.push({
        index: line.index,
        data: canonicalBytes(line.record),
        ...(line.leafHash ? { hash: Buffer.from(line.leafHash, 'hex') } : {}),
      });
      if (chunk.length >= 10_000) {
        yield chunk;
        chunk = [];
      }
    }
    if (chunk.length > 0) yield chunk;
  }
  return { header, leaves: chunks() };
}
