import { IdentityError } from '../errors.ts';
import type { StoredSession } from './token-file.ts';

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

interface Discovery {
  issuer: string;
  token_endpoint: string;
  device_authorization_endpoint: string;
}

export interface DeviceLoginOptions {
  issuer: string;
  org: string;
  clientId?: string;
  resource?: string;
  scope?: string;
  fetchFn: typeof fetch;
  /** Called once with what the person must open and type. */
  onCode: (info: {
    verificationUri: string;
    verificationUriComplete?: string;
    userCode: string;
  }) => void;
  /** Seconds between polls when the broker names none (RFC 8628 default 5). */
  pollIntervalSeconds?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

async function discover(issuer: string, fetchFn: typeof fetch): Promise<Discovery> {
  let res: Response;
  try {
    res = await fetchFn(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
  } catch (err) {
    throw new IdentityError(
      'ERR_IDENTITY_UPSTREAM_UNAVAILABLE',
      `cannot reach the identity broker at ${issuer}`,
      { cause: err },
    );
  }
  if (!res.ok)
    throw new IdentityError(
      'ERR_IDENTITY_UPSTREAM_UNAVAILABLE',
      `the identity broker at ${issuer} answered ${res.status}`,
    );
  return (await res.json()) as Discovery;
}

async function postForm(fetchFn: typeof fetch, url: string, form: Record<string, string>) {
  const res = await fetchFn(url, { method: 'POST', body: new URLSearchParams(form) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function session(
  base: Omit<StoredSession, 'accessToken' | 'expiresAt' | 'refreshToken'>,
  body: Record<string, unknown>,
  now: number,
  previousRefresh?: string,
): StoredSession {
  return {
    ...base,
    accessToken: String(body.access_token),
    expiresAt: Math.floor(now / 1000) + Number(body.expires_in ?? 300),
    refreshToken: typeof body.refresh_token === 'string' ? body.refresh_token : previousRefresh,
  };
}

/**
 * RFC 8628 device authorization against the broker: shows the code, polls until the person
 * approves (or denies, or the code expires) and returns the session to store.
 */
export async function deviceLogin(options: DeviceLoginOptions): Promise<StoredSession> {
  const clientId = options.clientId ?? 'bulwark-cli';
  const resource = options.resource ?? 'urn:bulwark:inference';
  const scope = options.scope ?? 'model:infer';
  const sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  const now = options.now ?? Date.now;
  const d = await discover(options.issuer, options.fetchFn);
  const orgs = await options.fetchFn(`${options.issuer.replace(/\/$/, '')}/organisations`);
  if (orgs.ok) {
    const known = (await orgs.json()) as { id: string }[];
    if (!known.some((o) => o.id === options.org)) {
      throw new IdentityError(
        'ERR_IDENTITY_UNKNOWN_ORGANISATION',
        `unknown organisation "${options.org}"; known: ${known.map((o) => o.id).join(', ')}`,
      );
    }
  }
  const start = await postForm(options.fetchFn, d.device_authorization_endpoint, {
    client_id: clientId,
    scope: `openid ${scope}`,
    resource,
    org: options.org,
  });
  if (start.status !== 200) {
    throw new IdentityError(
      'ERR_IDENTITY_UPSTREAM_REFUSED',
      `the broker refused the login: ${String(start.body.error)}`,
    );
  }
  const deviceCode = String(start.body.device_code);
  options.onCode({
    verificationUri: String(start.body.verification_uri),
    verificationUriComplete:
      typeof start.body.verification_uri_complete === 'string'
        ? start.body.verification_uri_complete
        : undefined,
    userCode: String(start.body.user_code),
  });
  let interval = Number(start.body.interval ?? options.pollIntervalSeconds ?? 5) * 1000;
  const deadline = now() + Number(start.body.expires_in ?? 600) * 1000;
  while (now() < deadline) {
    await sleep(interval);
    const res = await postForm(options.fetchFn, d.token_endpoint, {
      grant_type: DEVICE_GRANT,
      client_id: clientId,
      device_code: deviceCode,
    });
    if (res.status === 200)
      return session(
        { issuer: d.issuer, clientId, org: options.org, resource, scope },
        res.body,
        now(),
      );
    switch (res.body.error) {
      case 'authorization_pending':
        continue;
      case 'slow_down':
        interval += 5000;
        continue;
      case 'access_denied':
        throw new IdentityError('ERR_IDENTITY_UPSTREAM_REFUSED', 'the login was denied');
      default:
        throw new IdentityError(
          'ERR_IDENTITY_UPSTREAM_REFUSED',
          `the login failed: ${String(res.body.error)}`,
        );
    }
  }
  throw new IdentityError(
    'ERR_IDENTITY_UPSTREAM_REFUSED',
    'the code expired before it was approved; run the login again',
  );
}

/**
 * Returns a session whose access token is valid for at least `minValiditySeconds`, refreshing
 * (and rotating the refresh token) when needed.
 */
export async function freshSession(
  current: StoredSession,
  options: { fetchFn: typeof fetch; now?: () => number; minValiditySeconds?: number },
): Promise<StoredSession> {
  const now = (options.now ?? Date.now)();
  if (current.expiresAt - Math.floor(now / 1000) > (options.minValiditySeconds ?? 30))
    return current;
  if (!current.refreshToken) {
    throw new IdentityError(
      'ERR_IDENTITY_UPSTREAM_REFUSED',
      'the stored token expired and cannot be refreshed; run `bulwark login` again',
    );
  }
  const d = await discover(current.issuer, options.fetchFn);
  const res = await postForm(options.fetchFn, d.token_endpoint, {
    grant_type: 'refresh_token',
    client_id: current.clientId,
    refresh_token: current.refreshToken,
  });
  if (res.status !== 200) {
    throw new IdentityError(
      'ERR_IDENTITY_UPSTREAM_REFUSED',
      `the broker refused the refresh (${String(res.body.error)}); run \`bulwark login\` again`,
    );
  }
  const base = {
    issuer: current.issuer,
    clientId: current.clientId,
    org: current.org,
    resource: current.resource,
    scope: current.scope,
  };
  return session(base, res.body, now, current.refreshToken);
}
