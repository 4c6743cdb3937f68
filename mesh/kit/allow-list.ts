import { MeshError } from './mesh-error.ts';

/**
 * Which peer SPIFFE IDs may call a server: a list of exact IDs, or prefixes ending in `/*`
 * (`spiffe://bulwark.local/partner/*` admits every partner client), or a function.
 */
export type PeerAllowList = readonly string[] | ((spiffeId: string) => boolean);

/** Compiles an allow-list into a predicate; rejects malformed entries up front. */
export function compileAllowList(allowList: PeerAllowList): (spiffeId: string) => boolean {
  if (typeof allowList === 'function') return allowList;
  if (!Array.isArray(allowList)) {
    throw new MeshError(
      'ERR_MESH_INVALID_OPTION',
      'allowedPeers must be a list of SPIFFE IDs (or prefixes ending in "/*") or a function',
    );
  }
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const entry of allowList) {
    if (!entry.startsWith('spiffe://')) {
      throw new MeshError(
        'ERR_MESH_INVALID_OPTION',
        `allowedPeers entry "${entry}" is not a SPIFFE ID (spiffe://<trust-domain>/...)`,
      );
    }
    if (entry.endsWith('/*')) prefixes.push(entry.slice(0, -1));
    else exact.add(entry);
  }
  return (id) => exact.has(id) || prefixes.some((prefix) => id.startsWith(prefix));
}
