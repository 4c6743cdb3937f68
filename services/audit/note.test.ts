import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createNoteSigner,
  formatCheckpoint,
  openCheckpoint,
  openNote,
  parseCheckpoint,
  parseVerifierKey,
  signNote,
} from './note.ts';
import { loadOrCreateSigningKey } from './signing-key.ts';

// Published example of golang.org/x/mod/sumdb/note (the reference signed-note implementation).
const PETER_SKEY_MATERIAL = 'AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const PETER_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const PETER_TEXT =
  'If you think cryptography is the answer to your problem,\n' +
  "then you don't know what your problem is.\n";
const PETER_NOTE =
  PETER_TEXT +
  '\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';

function peterKey() {
  const seed = Buffer.from(PETER_SKEY_MATERIAL, 'base64').subarray(1);
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
}

describe('C2SP signed notes', () => {
  it('reproduces the published example byte for byte (key id, verifier key, signature)', () => {
    const signer = createNoteSigner('PeterNeumann', peterKey());
    expect(signer.verifierKey).toBe(PETER_VKEY);
    expect(signer.keyId.toString(16)).toBe('c74f20a3');
    expect(signNote(PETER_TEXT, [signer])).toBe(PETER_NOTE);
    expect(openNote(PETER_NOTE, [parseVerifierKey(PETER_VKEY)])).toEqual({
      text: PETER_TEXT,
      verifiedBy: ['PeterNeumann'],
    });
  });

  it('refuses an altered text, an altered signature and notes signed by no known key', () => {
    const v = parseVerifierKey(PETER_VKEY);
    expect(() => openNote(PETER_NOTE.replace('cryptography', 'cryptographY'), [v])).toThrow(
      /does not verify/,
    );
    expect(() => openNote(PETER_NOTE.replace('Zb6KE6', 'Zb6KE7'), [v])).toThrow(/does not verify/);
    const other = createNoteSigner('Other', generateKeyPairSync('ed25519').privateKey);
    expect(() => openNote(signNote(PETER_TEXT, [other]), [v])).toThrow(
      /no signature from a known key/,
    );
    // Same name, different key: its id differs, so it is ignored and nothing verifies.
    const impostor = createNoteSigner('PeterNeumann', generateKeyPairSync('ed25519').privateKey);
    expect(() => openNote(signNote(PETER_TEXT, [impostor]), [v])).toThrow(/no signature/);
    expect(() => openNote(PETER_TEXT, [v])).toThrow(/malformed/);
    expect(() => openNote(`${PETER_TEXT}\n\u2014 PeterNeumann !!!\n`, [v])).toThrow(/malformed/);
  });

  it('refuses malformed verifier keys', () => {
    expect(() =>
      parseVerifierKey('PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'),
    ).toThrow(/mismatch/);
    expect(() => parseVerifierKey('PeterNeumann+c74f20a3')).toThrow();
    expect(() =>
      parseVerifierKey('+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'),
    ).toThrow();
    expect(() =>
      parseVerifierKey('PeterNeumann+c74f20a3+AhRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T'),
    ).toThrow();
  });
});

describe('tlog-checkpoint bodies', () => {
  const root = Buffer.alloc(32, 7);
  it('formats and parses origin, size and base64 root', () => {
    const text = formatCheckpoint({ origin: 'bulwark.local/audit', size: 12, root });
    expect(text).toBe(`bulwark.local/audit\n12\n${root.toString('base64')}\n`);
    expect(parseCheckpoint(text)).toEqual({
      origin: 'bulwark.local/audit',
      size: 12,
      root,
      extensions: [],
    });
  });

  it('refuses malformed bodies and foreign origins', () => {
    for (const bad of [
      'a\n01\nAAAA\n',
      'a\n1\nAAAA\n',
      'a\n-1\n',
      'a\n1\n' + root.toString('base64'),
      '\n1\n' + root.toString('base64') + '\n',
    ]) {
      expect(() => parseCheckpoint(bad)).toThrow(/malformed/);
    }
    const signer = createNoteSigner(
      'bulwark.local/audit',
      generateKeyPairSync('ed25519').privateKey,
    );
    const note = signNote(formatCheckpoint({ origin: 'elsewhere', size: 1, root }), [signer]);
    expect(() =>
      openCheckpoint(note, parseVerifierKey(signer.verifierKey), 'bulwark.local/audit'),
    ).toThrow(/origin/);
  });
});

describe('signing key file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'audit-key-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is created once with mode 0600 and reused', () => {
    const path = join(dir, 'log.key');
    const first = loadOrCreateSigningKey(path);
    expect(first.created).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const again = loadOrCreateSigningKey(path);
    expect(again.created).toBe(false);
    expect(again.key.export({ format: 'jwk' }).d).toBe(first.key.export({ format: 'jwk' }).d);
  });

  it('refuses a key file others can read, and a file that is not an Ed25519 key', () => {
    const path = join(dir, 'log.key');
    loadOrCreateSigningKey(path);
    chmodSync(path, 0o644);
    expect(() => loadOrCreateSigningKey(path)).toThrow(/readable by others/);
    const junk = join(dir, 'junk.key');
    writeFileSync(junk, 'not a key', { mode: 0o600 });
    expect(() => loadOrCreateSigningKey(junk)).toThrow(/not an Ed25519 key/);
  });
});
