/**
 * The log's Ed25519 checkpoint key: read from a PKCS#8 PEM file, created on first start with
 * mode 0600 (exclusive create, so two starting processes cannot both write one). A key file
 * readable by group or others is refused.
 */
import { generateKeyPairSync, createPrivateKey, type KeyObject } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  statSync,
  writeSync,
  constants,
} from 'node:fs';
import { dirname } from 'node:path';
import { AuditError } from './errors.ts';

export function loadOrCreateSigningKey(path: string): { key: KeyObject; created: boolean } {
  let created = false;
  try {
    const { privateKey } = generateKeyPairSync('ed25519');
    const pem = String(privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      writeSync(fd, pem);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    // Make the new directory entry durable too.
    const dirFd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
    created = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new AuditError('ERR_AUDIT_KEY', `cannot create the signing key file ${path}`, {
        cause: err,
      });
    }
  }
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new AuditError(
      'ERR_AUDIT_KEY',
      `signing key file ${path} is readable by others (mode ${mode.toString(8)}); chmod 600 it`,
    );
  }
  try {
    const key = createPrivateKey(readFileSync(path));
    if (key.asymmetricKeyType !== 'ed25519') throw new Error('not ed25519');
    return { key, created };
  } catch (err) {
    throw new AuditError('ERR_AUDIT_KEY', `signing key file ${path} is not an Ed25519 key`, {
      cause: err,
    });
  }
}
