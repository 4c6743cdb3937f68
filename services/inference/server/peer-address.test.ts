import { peerIp } from './peer-address.ts';

test.each([
  ['ipv4:127.0.0.1:5000', '127.0.0.1'],
  ['127.0.0.1:5000', '127.0.0.1'],
  ['ipv6:[::1]:5000', '::1'],
  ['[2001:db8::1]:443', '2001:db8::1'],
  ['unix:/tmp/sock', ''],
  ['evil:host', ''],
])('%s → %s', (peer, ip) => expect(peerIp(peer)).toBe(ip));
