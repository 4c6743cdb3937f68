/**
 * Client-credentials tokens from the identity broker for one of the load generator's
 * identities, renewed in the background before they expire (mesh tokens live 5 minutes, a soak
 * lasts longer). Calls keep using the current token while a renewal is under way.
 */
import { readFileSync } from 'node:fs';
import { createTlsFetch } from '../../identity/tls-fetch.ts';
import type { LoadIdentity } from './load-protocol.ts';

/** Renew this long before `exp` by default. */
const RENEW_BEFORE_MS = 90_000;
/** After a failed renewal, try again after this long. */
const RETRY_MS = 5_000;

export interface TokenSource {
  readonly clientId: string;
  /** `sub` of the current token. */
  readonly subject: string;
  /** The current access token; starts a renewal when it is due. */
  current(): string;
  /** Renewals done and failed so far. */
  readonly renewals: number;
  readonly renewalFailures: number;
}

function claimsOf(token: string): { sub?: string; exp?: number } {
  const payload = token.split('.')[1] ?? '';
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as {
    sub?: string;
    exp?: number;
  };
}

/**
 * Takes a first token (rejects when the broker refuses) and returns a source that renews it.
 *
 * @example
 * ```ts
 * const tokens = await createTokenSource(identity, { tokenUrl, ca });
 * md.set('authorization', `Bearer ${tokens.current()}`);
 * ```
 */
export async function createTokenSource(
  identity: LoadIdentity,
  options: { tokenUrl: string; ca: string; renewBeforeMs?: number },
): Promise<TokenSource> {
  const mtls = identity.certFile !== undefined && identity.keyFile !== undefined;
  const fetchFn = createTlsFetch({
    ca: options.ca,
    ...(mtls
      ? {
          cert: readFileSync(identity.certFile!, 'utf8'),
          key: readFileSync(identity.keyFile!, 'utf8'),
        }
      : {}),
    timeoutMs: 10_000,
  });
  // The secret is read once and only ever sent to the broker.
  const secret = identity.secretFile ? readFileSync(identity.secretFile, 'utf8').trim() : '';

  async function request(): Promise<string> {
    const res = await fetchFn(options.tokenUrl, {
      method: 'POST',
      headers: secret
        ? {
            authorization: `Basic ${Buffer.from(`${identity.clientId}:${secret}`).toString('base64')}`,
          }
        : {},
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        resource: 'urn:bulwark:inference',
        scope: 'model:infer',
        ...(secret ? {} : { client_id: identity.clientId }),
      }),
    });
    const body = (await res.json()) as { access_token?: string; error?: string };
    if (res.status !== 200 || !body.access_token) {
      throw new Error(
        `token request for ${identity.clientId} refused: ${res.status} ${body.error ?? ''}`,
      );
    }
    return body.access_token;
  }

  let token = await request();
  let renewAt = 0;
  const schedule = () => {
    const exp = claimsOf(token).exp;
    renewAt = exp ? exp * 1000 - (options.renewBeforeMs ?? RENEW_BEFORE_MS) : Date.now() + 60_000;
  };
  schedule();
  let renewing = false;
  const state = { renewals: 0, renewalFailures: 0 };

  return {
    clientId: identity.clientId,
    get subject() {
      return claimsOf(token).sub ?? identity.clientId;
    },
    get renewals() {
      return state.renewals;
    },
    get renewalFailures() {
      return state.renewalFailures;
    },
    current() {
      if (!renewing && Date.now() >= renewAt) {
        renewing = true;
        request().then(
          (fresh) => {
            token = fresh;
            schedule();
            state.renewals++;
            renewing = false;
          },
          () => {
            state.renewalFailures++;
            renewAt = Date.now() + RETRY_MS;
            renewing = false;
          },
        );
      }
      return token;
    },
  };
}
