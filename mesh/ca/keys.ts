import { webcrypto } from 'node:crypto';
import type { X509CertificateGenerator } from '@peculiar/x509';
import { x509 } from './x509.ts';

/** WebCrypto key types (the project's `lib` has no DOM types). */
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;

/** The WebCrypto implementation every CA operation uses (Node's own). */
export const meshCrypto = webcrypto as unknown as Parameters<
  typeof X509CertificateGenerator.create
>[1];

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;

/** Generates an extractable ECDSA P-256 key pair. */
export async function generateP256KeyPair(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
}

/** Exports a private key as a PKCS#8 `PRIVATE KEY` PEM (what Node's TLS accepts). */
export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** Imports an ECDSA P-256 PKCS#8 PEM private key for signing. */
export async function privateKeyFromPem(pem: string): Promise<CryptoKey> {
  const [der] = x509.PemConverter.decode(pem);
  if (!der) throw new Error('no PEM block found');
  return webcrypto.subtle.importKey('pkcs8', der, EC_P256, true, ['sign']);
}
