import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { exportJWK, SignJWT } from 'jose';

/** What the misbehaving IdP gets wrong in its next answer. */
export interface RogueMode {
  issuer?: string;
  audience?: string;
  nonce?: string;
  state?: string;
  expiresIn?: number;
  /** Answer the authorization request with `error=access_denied`. */
  refuse?: boolean;
  /** Delay every token response by this long (ms). */
  delayMs?: number;
}

/**
 * A deliberately misbehaving OpenID provider for refusal tests: it serves valid discovery and
 * JWKS, approves every authorization at once and then answers with an ID token whose issuer,
 * audience, nonce or expiry (or the callback's state) is wrong as `mode` says.
 */
export async function startRogueIdp(tls: { cert: string; key: string }) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'rogue-1', alg: 'ES256', use: 'sig' };
  const mode: RogueMode = {};
  const nonces = new Map<string, string>();
  let issuer = '';
  const server = createServer(tls, (req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    const json = (body: unknown) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === '/.well-known/openid-configuration') {
      json({
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
        response_types_supported: ['code'],
        id_token_signing_alg_values_supported: ['ES256'],
        code_challenge_methods_supported: ['S256'],
      });
    } else if (url.pathname === '/jwks') {
      json({ keys: [jwk] });
    } else if (url.pathname === '/authorize') {
      const code = `code-${nonces.size + 1}`;
      nonces.set(code, url.searchParams.get('nonce') ?? '');
      const back = new URL(url.searchParams.get('redirect_uri') ?? '');
      if (mode.refuse) back.searchParams.set('error', 'access_denied');
      else back.searchParams.set('code', code);
      back.searchParams.set('state', mode.state ?? url.searchParams.get('state') ?? '');
      res.writeHead(302, { location: back.href }).end();
    } else if (url.pathname === '/token' && req.method === 'POST') {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString()));
      req.on('end', () => {
        const code = new URLSearchParams(raw).get('code') ?? '';
        const now = Math.floor(Date.now() / 1000);
        void new SignJWT({ email: 'user@rogue.example', nonce: mode.nonce ?? nonces.get(code) })
          .setProtectedHeader({ alg: 'ES256', kid: 'rogue-1' })
          .setIssuer(mode.issuer ?? issuer)
          .setAudience(mode.audience ?? 'bulwark-broker')
          .setSubject('r-1')
          .setIssuedAt(now)
          .setExpirationTime(now + (mode.expiresIn ?? 300))
          .sign(privateKey)
          .then((idToken) =>
            setTimeout(
              () => json({ access_token: 'opaque', token_type: 'Bearer', id_token: idToken }),
              mode.delayMs ?? 0,
            ),
          );
      });
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer,
    mode,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
