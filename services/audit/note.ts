/**
 * C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, and the C2SP `tlog-checkpoint`
 * body they carry (c2sp.org/tlog-checkpoint).
 *
 * @example
 * ```ts
 * const signer = createNoteSigner('bulwark.local/audit', privateKey);
 * const note = signNote(formatCheckpoint({ origin, size, root }), [signer]);
 * const { text } = openNote(note, [parseVerifierKey(signer.verifierKey)]);
 * parseCheckpoint(text); // { origin, size, root, extensions: [] }
 * ```
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

const ED25519_TYPE = 0x01;
const SIGNATURE_PREFIX = '\u2014 ';
const MAX_SIGNATURES = 16;

export interface NoteSigner {
  name: string;
  keyId: number;
  /** `<name>+<key id hex>+<base64(0x01 || public key)>` */
  verifierKey: string;
  sign(message: Uint8Array): Buffer;
}

export interface NoteVerifier {
  name: string;
  keyId: number;
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

export class NoteError extends Error {
  override name = 'NoteError';
}

function checkKeyName(name: string): void {
  if (name.length === 0 || /[\s+]/u.test(name)) {
    throw new NoteError('key name must be non-empty, without spaces or "+"');
  }
}

/** Raw 32-byte Ed25519 public key of a key object. */
export function rawEd25519PublicKey(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new NoteError('not an Ed25519 key');
  return Buffer.from(jwk.x, 'base64url');
}

/** Key ID = first four bytes (big-endian) of SHA-256(name || 0x0A || 0x01 || public key). */
export function ed25519KeyId(name: string, publicKey: Uint8Array): number {
  const digest = createHash('sha256')
    .update(name, 'utf8')
    .update(Buffer.from([0x0a, ED25519_TYPE]))
    .update(publicKey)
    .digest();
  return digest.readUInt32BE(0);
}

export function formatVerifierKey(name: string, publicKey: Uint8Array): string {
  checkKeyName(name);
  const id = ed25519KeyId(name, publicKey).toString(16).padStart(8, '0');
  const material = Buffer.concat([Buffer.from([ED25519_TYPE]), publicKey]).toString('base64');
  return `${name}+${id}+${material}`;
}

function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  return createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') },
    format: 'jwk',
  });
}

/** Parses a verifier key string; refuses any key whose id does not match its material. */
export function parseVerifierKey(vkey: string): NoteVerifier & { publicKey: Buffer } {
  // The base64 material may itself contain '+', so split on the first two only.
  const first = vkey.indexOf('+');
  const second = vkey.indexOf('+', first + 1);
  if (first <= 0 || second < 0) throw new NoteError('malformed verifier key');
  const name = vkey.slice(0, first);
  const idHex = vkey.slice(first + 1, second);
  const material = Buffer.from(vkey.slice(second + 1), 'base64');
  checkKeyName(name);
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new NoteError('malformed verifier key id');
  if (material.toString('base64') !== vkey.slice(second + 1)) {
    throw new NoteError('malformed verifier key material');
  }
  if (material.length !== 33 || material[0] !== ED25519_TYPE) {
    throw new NoteError('verifier key is not an Ed25519 note key');
  }
  const publicKey = material.subarray(1);
  const keyId = Number.parseInt(idHex, 16);
  if (ed25519KeyId(name, publicKey) !== keyId) throw new NoteError('verifier key id mismatch');
  const keyObject = publicKeyFromRaw(publicKey);
  return {
    name,
    keyId,
    publicKey,
    verify: (message, signature) => {
      try {
        return signature.length === 64 && verify(null, message, keyObject, signature);
      } catch {
        return false;
      }
    },
  };
}

export function createNoteSigner(name: string, privateKey: KeyObject): NoteSigner {
  checkKeyName(name);
  const publicKey = rawEd25519PublicKey(createPublicKey(privateKey));
  return {
    name,
    keyId: ed25519KeyId(name, publicKey),
    verifierKey: formatVerifierKey(name, publicKey),
    sign: (message) => sign(null, message, privateKey),
  };
}

function checkNoteText(text: string): void {
  if (!text.endsWith('\n')) throw new NoteError('note text must end in a newline');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0009\u000b-\u001f]/.test(text)) {
    throw new NoteError('note text must not contain control characters');
  }
}

/** Signs a note text with every signer, returning the whole signed note. */
export function signNote(text: string, signers: readonly NoteSigner[]): string {
  checkNoteText(text);
  const message = Buffer.from(text, 'utf8');
  const lines = signers.map((s) => {
    const id = Buffer.alloc(4);
    id.writeUInt32BE(s.keyId, 0);
    const blob = Buffer.concat([id, s.sign(message)]).toString('base64');
    return `${SIGNATURE_PREFIX}${s.name} ${blob}\n`;
  });
  return `${text}\n${lines.join('')}`;
}

/**
 * Opens a signed note: returns its text when at least one signature from a known key verifies.
 * Signatures from unknown keys are ignored; a known key whose signature fails rejects the note.
 */
export function openNote(
  note: string,
  verifiers: readonly NoteVerifier[],
): { text: string; verifiedBy: string[] } {
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new NoteError('malformed note: no signature block');
  const text = note.slice(0, split + 1);
  checkNoteText(text);
  const block = note.slice(split + 2);
  if (!block.endsWith('\n')) throw new NoteError('malformed note: signature block');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length === 0 || lines.length > MAX_SIGNATURES) {
    throw new NoteError('malformed note: signature count');
  }
  const message = Buffer.from(text, 'utf8');
  const verifiedBy: string[] = [];
  for (const line of lines) {
    if (!line.startsWith(SIGNATURE_PREFIX)) throw new NoteError('malformed signature line');
    const rest = line.slice(SIGNATURE_PREFIX.length);
    const space = rest.lastIndexOf(' ');
    if (space <= 0) throw new NoteError('malformed signature line');
    const name = rest.slice(0, space);
    const b64 = rest.slice(space + 1);
    const blob = Buffer.from(b64, 'base64');
    if (blob.toString('base64') !== b64 || blob.length < 5) {
      throw new NoteError('malformed signature');
    }
    const keyId = blob.readUInt32BE(0);
    const verifier = verifiers.find((v) => v.name === name && v.keyId === keyId);
    if (!verifier) continue;
    if (!verifier.verify(message, blob.subarray(4))) {
      throw new NoteError(`signature by ${name} does not verify`);
    }
    verifiedBy.push(name);
  }
  if (verifiedBy.length === 0) throw new NoteError('note has no signature from a known key');
  return { text, verifiedBy };
}

export interface Checkpoint {
  origin: string;
  size: number;
  root: Uint8Array;
  extensions?: string[];
}

/** The C2SP tlog-checkpoint body: origin, decimal size, base64 root hash, optional extensions. */
export function formatCheckpoint(cp: Checkpoint): string {
  if (cp.origin.length === 0 || cp.origin.includes('\n')) throw new NoteError('bad origin');
  if (!Number.isSafeInteger(cp.size) || cp.size < 0) throw new NoteError('bad tree size');
  const ext = (cp.extensions ?? []).map((e) => `${e}\n`).join('');
  return `${cp.origin}\n${cp.size}\n${Buffer.from(cp.root).toString('base64')}\n${ext}`;
}

export function parseCheckpoint(text: string): Required<Checkpoint> {
  const lines = text.split('\n');
  if (lines.length < 4 || lines[lines.length - 1] !== '')
    throw new NoteError('malformed checkpoint');
  const [origin = '', sizeText = '', rootText = ''] = lines;
  if (origin.length === 0) throw new NoteError('malformed checkpoint origin');
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeText)) throw new NoteError('malformed checkpoint size');
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) throw new NoteError('malformed checkpoint size');
  const root = Buffer.from(rootText, 'base64');
  if (root.length !== 32 || root.toString('base64') !== rootText) {
    throw new NoteError('malformed checkpoint root');
  }
  const extensions = lines.slice(3, -1);
  if (extensions.some((e) => e.length === 0)) throw new NoteError('malformed checkpoint extension');
  return { origin, size, root, extensions };
}

/** Opens a signed checkpoint note, verifies its signature and checks its origin. */
export function openCheckpoint(
  note: string,
  verifier: NoteVerifier,
  origin: string,
): Required<Checkpoint> {
  const { text } = openNote(note, [verifier]);
  const cp = parseCheckpoint(text);
  if (cp.origin !== origin) throw new NoteError(`checkpoint origin is not ${origin}`);
  return cp;
}
