/**
 * Ed25519 signatures over a bundle manifest. The signature covers a domain-separation prefix
 * plus the exact manifest bytes, so a signature made for anything else never verifies here.
 * `manifest.sig` is JSON: `{ "alg": "Ed25519", "keyId": "...", "signature": "<base64>" }`.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { z } from 'zod';

const DOMAIN = Buffer.from('bulwark.model-manifest.v1\n');

const signatureSchema = z.object({
  alg: z.literal('Ed25519'),
  keyId: z.string().regex(/^[0-9a-f]{32}$/),
  signature: z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/),
});
export type ManifestSignature = z.infer<typeof signatureSchema>;

/** A signer key pair as PEM (private key PKCS#8, public key SPKI). */
export interface SignerKeyPair {
  privateKeyPem: string;
  publicKeyPem: string;
  keyId: string;
}

/** Key id: first 16 bytes (hex) of SHA-256 over the SPKI DER of the public key. */
export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').slice(0, 32);
}

/**
 * Makes a new Ed25519 signer key pair.
 *
 * @example
 * ```ts
 * const { privateKeyPem, publicKeyPem, keyId } = generateSignerKey();
 * ```
 */
export function generateSignerKey(): SignerKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyId: keyIdOf(publicKey),
  };
}

/** Loads a public key (PEM) and checks it is Ed25519. */
export function loadTrustedKey(pem: string | KeyObject): KeyObject {
  const key = typeof pem === 'string' ? createPublicKey(pem) : pem;
  if (key.asymmetricKeyType !== 'ed25519') throw new Error('trusted signer keys must be Ed25519');
  return key;
}

/** Signs manifest bytes; returns the `manifest.sig` contents. */
export function signManifest(manifestBytes: Uint8Array, privateKeyPem: string): string {
  const privateKey = createPrivateKey(privateKeyPem);
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error('signer key must be Ed25519');
  const signature = sign(null, Buffer.concat([DOMAIN, manifestBytes]), privateKey);
  const sig: ManifestSignature = {
    alg: 'Ed25519',
    keyId: keyIdOf(createPublicKey(privateKey)),
    signature: signature.toString('base64'),
  };
  return `${JSON.stringify(sig, null, 2)}\n`;
}

/**
 * Verifies `manifest.sig` against the trusted keys. Returns the id of the key that signed, or
 * throws with the reason (malformed, unknown key, bad signature).
 */
export function verifyManifestSignature(
  manifestBytes: Uint8Array,
  signatureBytes: Uint8Array,
  trustedKeys: readonly KeyObject[],
): string {
  let parsed: ManifestSignature;
  try {
    parsed = signatureSchema.parse(JSON.parse(Buffer.from(signatureBytes).toString('utf8')));
  } catch {
    throw new Error('manifest.sig is malformed');
  }
  const key = trustedKeys.find((k) => keyIdOf(k) === parsed.keyId);
  if (!key) throw new Error(`manifest is signed by untrusted key ${parsed.keyId}`);
  const ok = verify(
    null,
    Buffer.concat([DOMAIN, manifestBytes]),
    key,
    Buffer.from(parsed.signature, 'base64'),
  );
  if (!ok) throw new Error(`manifest signature by key ${parsed.keyId} does not verify`);
  return parsed.keyId;
}
