import { constants, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import {
  isJwtAlgorithm,
  JWT_ALGORITHMS,
  keyServes,
  verifyJws,
  verifyJwsOffThread,
  type JwtAlgorithm,
} from './jws-algorithms.ts';

const data = Buffer.from('eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9', 'latin1');

const ec = (namedCurve: string) => generateKeyPairSync('ec', { namedCurve });
const rsa = (modulusLength: number) => generateKeyPairSync('rsa', { modulusLength });
const keys = {
  p256: ec('prime256v1'),
  p384: ec('secp384r1'),
  p521: ec('secp521r1'),
  secp256k1: ec('secp256k1'),
  rsa2048: rsa(2048),
  rsa1024: rsa(1024),
  ed25519: generateKeyPairSync('ed25519'),
};

/** A signature as a JWS signer makes it (RFC 7518), with node:crypto. */
function jwsSign(alg: JwtAlgorithm, privateKey: KeyObject, input = data): Buffer {
  const hash = alg === 'EdDSA' ? null : `sha${alg.slice(2)}`;
  if (alg.startsWith('ES'))
    return sign(hash, input, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  if (alg.startsWith('PS')) {
    return sign(hash, input, {
      key: privateKey,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: Number(alg.slice(2)) / 8,
    });
  }
  return sign(hash, input, privateKey);
}

const signerOf: Record<JwtAlgorithm, keyof typeof keys> = {
  ES256: 'p256',
  ES384: 'p384',
  ES512: 'p521',
  RS256: 'rsa2048',
  RS384: 'rsa2048',
  RS512: 'rsa2048',
  PS256: 'rsa2048',
  PS384: 'rsa2048',
  PS512: 'rsa2048',
  EdDSA: 'ed25519',
};

describe('JWS algorithms', () => {
  it('knows the asymmetric algorithms only', () => {
    expect(JWT_ALGORITHMS).toHaveLength(10);
    for (const alg of [
      'HS256',
      'HS512',
      'none',
      'ES256K',
      'RSA-OAEP',
      '',
      'toString',
      'constructor',
    ]) {
      expect(isJwtAlgorithm(alg)).toBe(false);
    }
  });

  it.each(JWT_ALGORITHMS)('%s: a real signature verifies; tampered data does not', (alg) => {
    const pair = keys[signerOf[alg]];
    const signature = jwsSign(alg, pair.privateKey);
    expect(keyServes(pair.publicKey, alg)).toBe(true);
    expect(verifyJws(alg, data, signature, pair.publicKey)).toBe(true);
    const tampered = Buffer.from(data);
    tampered[3] = tampered[3]! ^ 1;
    expect(verifyJws(alg, tampered, signature, pair.publicKey)).toBe(false);
  });

  it.each(JWT_ALGORITHMS)('%s on the thread pool gives the same answers', async (alg) => {
    const pair = keys[signerOf[alg]];
    const signature = jwsSign(alg, pair.privateKey);
    const tampered = Buffer.from(data);
    tampered[5] = tampered[5]! ^ 1;
    await expect(verifyJwsOffThread(alg, data, signature, pair.publicKey)).resolves.toBe(true);
    await expect(verifyJwsOffThread(alg, tampered, signature, pair.publicKey)).resolves.toBe(false);
    for (const junk of [Buffer.alloc(0), Buffer.alloc(64, 7), Buffer.alloc(300, 1)]) {
      await expect(verifyJwsOffThread(alg, data, junk, pair.publicKey)).resolves.toBe(false);
    }
  });

  it('matches keys to algorithms: curve, key type and RSA size', () => {
    expect(keyServes(keys.p256.publicKey, 'ES384')).toBe(false);
    expect(keyServes(keys.p384.publicKey, 'ES256')).toBe(false);
    expect(keyServes(keys.secp256k1.publicKey, 'ES256')).toBe(false);
    expect(keyServes(keys.ed25519.publicKey, 'ES256')).toBe(false);
    expect(keyServes(keys.p256.publicKey, 'RS256')).toBe(false);
    // RFC 7518 section 3.3: RSA keys of at least 2048 bits.
    expect(keyServes(keys.rsa1024.publicKey, 'RS256')).toBe(false);
    expect(keyServes(keys.rsa1024.publicKey, 'PS256')).toBe(false);
    // A private key never verifies here.
    expect(keyServes(keys.p256.privateKey, 'ES256')).toBe(false);
  });

  it('refuses signatures in the wrong form', () => {
    // ECDSA in DER (what OpenSSL emits by default) instead of the JWS r||s form.
    const der = sign('sha256', data, keys.p256.privateKey);
    expect(verifyJws('ES256', data, der, keys.p256.publicKey)).toBe(false);
    // PSS with a salt other than the digest length.
    const shortSalt = sign('sha256', data, {
      key: keys.rsa2048.privateKey,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: 8,
    });
    expect(verifyJws('PS256', data, shortSalt, keys.rsa2048.publicKey)).toBe(false);
    // PKCS#1 v1.5 presented as PSS, and the other way round.
    expect(
      verifyJws('PS256', data, jwsSign('RS256', keys.rsa2048.privateKey), keys.rsa2048.publicKey),
    ).toBe(false);
    expect(
      verifyJws('RS256', data, jwsSign('PS256', keys.rsa2048.privateKey), keys.rsa2048.publicKey),
    ).toBe(false);
    // Garbage of every length: false, never a throw.
    for (const length of [0, 1, 64, 256, 1000]) {
      const junk = Buffer.alloc(length, 7);
      for (const alg of JWT_ALGORITHMS) {
        expect(verifyJws(alg, data, junk, keys[signerOf[alg]].publicKey)).toBe(false);
      }
    }
  });
});
