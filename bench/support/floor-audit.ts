/**
 * The floor of audit-before-answer on this machine: the least any design can do that answers
 * only after a separate process made the record durable. A bare TCP server (no TLS, no gRPC,
 * no Merkle tree, no checks) appends each length-prefixed record to SQLite (WAL,
 * `synchronous = FULL`, so every commit is fsync'd) with group commit: all records that arrived
 * while the previous commit ran go into the next one. Each record is acknowledged with its
 * 4-byte index once its commit returned. {@link connectFloorAudit} is the caller's side.
 */
import { DatabaseSync } from 'node:sqlite';
import { connect, createServer, type Socket } from 'node:net';

/** Starts the floor audit server on a free loopback port; resolves with the port. */
export async function startFloorAuditServer(dbFile: string): Promise<number> {
  const db = new DatabaseSync(dbFile);
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = FULL');
  db.exec('CREATE TABLE IF NOT EXISTS leaves (idx INTEGER PRIMARY KEY, data BLOB NOT NULL)');
  const insert = db.prepare('INSERT INTO leaves (idx, data) VALUES (?, ?)');
  let size = 0;
  const queue: { socket: Socket; data: Buffer }[] = [];
  let scheduled = false;
  const commit = () => {
    scheduled = false;
    const batch = queue.splice(0);
    if (batch.length === 0) return;
    db.exec('BEGIN IMMEDIATE');
    for (const { data } of batch) insert.run(size++, data);
    db.exec('COMMIT');
    let index = size - batch.length;
    for (const { socket } of batch) {
      const ack = Buffer.allocUnsafe(4);
      ack.writeUInt32BE(index++ >>> 0);
      socket.write(ack);
    }
  };
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 4) {
        const length = pending.readUInt32BE(0);
        if (pending.length < 4 + length) break;
        queue.push({ socket, data: pending.subarray(4, 4 + length) });
        pending = pending.subarray(4 + length);
      }
      // Records that arrive together commit together; the commit blocks this thread, so what
      // arrives meanwhile waits in the socket and makes the next group.
      if (!scheduled && queue.length > 0) {
        scheduled = true;
        setImmediate(commit);
      }
    });
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

/** One connection to the floor audit server: `append` resolves with the record's index. */
export async function connectFloorAudit(
  port: number,
): Promise<{ append(record: Buffer): Promise<number>; close(): void }> {
  const socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  // Acknowledgements come back in the order the records went out.
  const waiting: ((index: number) => void)[] = [];
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let offset = 0;
    for (; offset + 4 <= pending.length; offset += 4)
      waiting.shift()?.(pending.readUInt32BE(offset));
    pending = pending.subarray(offset);
  });
  return {
    append(record) {
      const frame = Buffer.allocUnsafe(4 + record.length);
      frame.writeUInt32BE(record.length);
      record.copy(frame, 4);
      socket.write(frame);
      return new Promise((resolve) => waiting.push(resolve));
    },
    close: () => socket.destroy(),
  };
}
