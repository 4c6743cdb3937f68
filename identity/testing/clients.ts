import { randomUUID, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';

/** An RFC 7523 client assertion for `private_key_jwt`. */
export async function clientAssertion(
  clientId: string,
  key: KeyObject,
  audience: string,
): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: 'gw-1' })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(audience)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime('1m')
    .sign(key);
}

/** POSTs a form to the token endpoint and returns the status and JSON body. */
export async function postForm(
  fetchFn: typeof fetch,
  url: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetchFn(url, { method: 'POST', body: new URLSearchParams(form), headers });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
