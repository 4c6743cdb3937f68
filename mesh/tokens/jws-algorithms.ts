/**
 * The asymmetric JWS algorithms (RFC 7518 section 3, RFC 8037) a token may be verified with,
 * checked with `node:crypto` directly: which key may serve which algorithm, and the signature
 * check itself. Symmetric (`HS*`) and `none` are not here, so they can never be allowed.
 */
import { constants, verify as verifySignature, type KeyObject } from 'node:crypto';

export type JwtAlgorithm =
  'ES256' | 'ES384' | 'ES512' | 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'EdDSA';

interface AlgorithmRule {
  /** Digest for `crypto.verify` (null for EdDSA, which hashes internally). */
  hash: 'sha256' | 'sha384' | 'sha512' | null;
  family: 'ec' | 'rsa' | 'rsa-pss' | 'okp';
  /** ECDSA: the curve (OpenSSL name) and the IEEE P1363 signature length in bytes. */
  curve?: string;
  signatureLength?: number;
  /** PSS salt length: the digest's length (RFC 7518 section 3.5). */
  saltLength?: number;
}

const RULES: Record<JwtAlgorithm, AlgorithmRule> = {
  ES256: { hash: 'sha256', family: 'ec', curve: 'prime256v1', signatureLength: 64 },
  ES384: { hash: 'sha384', family: 'ec', curve: 'secp384r1', signatureLength: 96 },
  ES512: { hash: 'sha512', family: 'ec', curve: 'secp521r1', signatureLength: 132 },
  RS256: { hash: 'sha256', family: 'rsa' },
  RS384: { hash: 'sha384', family: 'rsa' },
  RS512: { hash: 'sha512', family: 'rsa' },
  PS256: { hash: 'sha256', family: 'rsa-pss', saltLength: 32 },
  PS384: { hash: 'sha384', family: 'rsa-pss', saltLength: 48 },
  PS512: { hash: 'sha512', family: 'rsa-pss', saltLength: 64 },
  EdDSA: { hash: null, family: 'okp' },
};

/** Every algorithm that can be allowed. */
export const JWT_ALGORITHMS = Object.keys(RULES) as readonly JwtAlgorithm[];

/** RSA keys shorter than this never verify (RFC 7518 section 3.3 requires 2048 bits). */
const MIN_RSA_BITS = 2048;

export const isJwtAlgorithm = (alg: unknown): alg is JwtAlgorithm =>
  typeof alg === 'string' && Object.hasOwn(RULES, alg);

const served = new WeakMap<KeyObject, Set<JwtAlgorithm>>();

/** Whether a public key may verify `alg` (worked out once per key object). */
export function keyServes(key: KeyObject, alg: JwtAlgorithm): boolean {
  let algorithms = served.get(key);
  if (!algorithms) {
    algorithms = new Set();
    if (key.type === 'public') {
      const type = key.asymmetricKeyType;
      const details = key.asymmetricKeyDetails;
      for (const [name, rule] of Object.entries(RULES) as [JwtAlgorithm, AlgorithmRule][]) {
        const fits =
          rule.family === 'ec'
            ? type === 'ec' && details?.namedCurve === rule.curve
            : rule.family === 'okp'
              ? type === 'ed25519' || type === 'ed448'
              : // An RSA key serves PKCS#1 v1.5 and PSS alike; an RSA-PSS key only PSS.
                (type === 'rsa' || (type === 'rsa-pss' && rule.family === 'rsa-pss')) &&
                (details?.modulusLength ?? 0) >= MIN_RSA_BITS;
        if (fits) algorithms.add(name);
      }
    }
    served.set(key, algorithms);
  }
  return algorithms.has(alg);
}

type VerifyKey = Parameters<typeof verifySignature>[2];

/** The `crypto.verify` key argument for `alg`, or null when the signature cannot be one. */
function verifyKey(alg: JwtAlgorithm, signature: Buffer, key: KeyObject): VerifyKey | null {
  const rule = RULES[alg];
  switch (rule.family) {
    case 'ec':
      return signature.length === rule.signatureLength ? { key, dsaEncoding: 'ieee-p1363' } : null;
    case 'rsa':
      return { key, padding: constants.RSA_PKCS1_PADDING };
    case 'rsa-pss':
      return { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: rule.saltLength! };
    case 'okp':
      return key;
  }
}

/** Checks a JWS signature over `data` (the ASCII `header.payload`) with one key. */
export function verifyJws(
  alg: JwtAlgorithm,
  data: Buffer,
  signature: Buffer,
  key: KeyObject,
): boolean {
  const options = verifyKey(alg, signature, key);
  if (!options) return false;
  try {
    return verifySignature(RULES[alg].hash, data, options, signature);
  } catch {
    // A malformed signature (wrong length for the key, bad encoding) is simply not valid.
    return false;
  }
}

/**
 * {@link verifyJws} on libuv's thread pool: the calling thread only queues the check. For a
 * process whose event loop is the bottleneck and whose signature checks are frequent (the
 * broker checks every new partner token), at the price of a thread hop per check.
 */
export function verifyJwsOffThread(
  alg: JwtAlgorithm,
  data: Buffer,
  signature: Buffer,
  key: KeyObject,
): Promise<boolean> {
  const options = verifyKey(alg, signature, key);
  if (!options) return Promise.resolve(false);
  return new Promise((resolve) => {
    try {
      verifySignature(RULES[alg].hash, data, options, signature, (err, ok) => resolve(!err && ok));
    } catch {
      resolve(false);
    }
  });
}
