import { isIP } from 'node:net';

/**
 * The IP address in a grpc-js peer string (`ipv4:1.2.3.4:5`, `ipv6:[::1]:5`, `1.2.3.4:5`,
 * `[::1]:5`), or `''` when there is none (e.g. a Unix socket).
 */
export function peerIp(peer: string): string {
  let s = peer.replace(/^ipv[46]:/, '');
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(s);
  if (bracket) s = bracket[1]!;
  else if (s.split(':').length === 2) s = s.slice(0, s.lastIndexOf(':'));
  return isIP(s) ? s : '';
}
