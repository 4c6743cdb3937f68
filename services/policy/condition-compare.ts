import { BlockList, isIP } from 'node:net';
import {
  RISK_TIERS,
  type ATTRIBUTE_KINDS,
  type AttributeName,
  type AttributeValues,
} from './attributes.ts';
import { ConditionSyntaxError } from './condition-error.ts';

/** Three-valued result: `undefined` is unknown (an attribute was absent). */
export type Tri = boolean | undefined;
export type Evaluator = (v: AttributeValues) => Tri;
export type Literal = string | number | boolean;

function fail(name: string, op: string, why: string): never {
  throw new ConditionSyntaxError(`"${name} ${op} ...": ${why}`);
}

function ipBlockList(name: string, items: Literal[]): BlockList {
  const list = new BlockList();
  for (const item of items) {
    if (typeof item !== 'string') fail(name, 'in', 'expects addresses or CIDR blocks');
    const [addr, prefix, extra] = item.split('/');
    const family = isIP(addr ?? '');
    if (!family || extra !== undefined) fail(name, 'in', `"${item}" is not an address or CIDR`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) {
      list.addAddress(addr!, type);
      continue;
    }
    const bits = Number(prefix);
    if (!/^\d+$/.test(prefix) || bits > (family === 4 ? 32 : 128)) {
      fail(name, 'in', `"${item}" has a bad prefix length`);
    }
    list.addSubnet(addr!, bits, type);
  }
  return list;
}

/** Reads an address as the block list expects it; IPv4-mapped IPv6 counts as IPv4. */
function ipOf(address: string): [string, 'ipv4' | 'ipv6'] | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const text = mapped ? mapped[1]! : address;
  const family = isIP(text);
  if (family === 0) return undefined;
  return [text, family === 4 ? 'ipv4' : 'ipv6'];
}

function compare(op: string, a: number, b: number): boolean {
  switch (op) {
    case '==':
      return a === b;
    case '!=':
      return a !== b;
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    default:
      return a >= b;
  }
}

export function compileComparison(
  name: AttributeName,
  kind: (typeof ATTRIBUTE_KINDS)[AttributeName],
  op: string,
  lit: Literal | Literal[],
): Evaluator {
  const list = Array.isArray(lit) ? lit : undefined;
  if ((op === 'in') !== (list !== undefined)) fail(name, op, '"in" and only "in" takes a list');
  switch (kind) {
    case 'set': {
      if (op !== 'has' || typeof lit !== 'string') fail(name, op, `only "has '<value>'" applies`);
      return (v) => (v.scopes === undefined ? undefined : v.scopes.includes(lit));
    }
    case 'bool': {
      if ((op !== '==' && op !== '!=') || typeof lit !== 'boolean') {
        fail(name, op, 'compare with == or != against true or false');
      }
      return (v) =>
        v.certificate_bound === undefined
          ? undefined
          : (v.certificate_bound === lit) === (op === '==');
    }
    case 'ip': {
      if (op === 'in') {
        const blocks = ipBlockList(name, list!);
        return (v) => {
          const ip = v.source_address === undefined ? undefined : ipOf(v.source_address);
          return ip === undefined ? undefined : blocks.check(ip[0], ip[1]);
        };
      }
      if ((op !== '==' && op !== '!=') || typeof lit !== 'string' || !ipOf(lit)) {
        fail(name, op, 'compare with ==, != or in against addresses');
      }
      const want = ipBlockList(name, [lit]);
      return (v) => {
        const ip = v.source_address === undefined ? undefined : ipOf(v.source_address);
        return ip === undefined ? undefined : want.check(ip[0], ip[1]) === (op === '==');
      };
    }
    case 'number': {
      const values = list ?? [lit as Literal];
      if (op === 'has' || values.some((x) => typeof x !== 'number'))
        fail(name, op, 'expects numbers');
      const nums = values as number[];
      const read = (v: AttributeValues): number | undefined =>
        name === 'hour' ? v.hour : v.batch_size;
      if (op === 'in') return (v) => (read(v) === undefined ? undefined : nums.includes(read(v)!));
      return (v) => (read(v) === undefined ? undefined : compare(op, read(v)!, nums[0]!));
    }
    case 'enum': {
      const values = list ?? [lit as Literal];
      const ranks = values.map((x) => RISK_TIERS.indexOf(x as never));
      if (op === 'has' || ranks.some((r) => r < 0)) {
        fail(name, op, `expects one of ${RISK_TIERS.map((t) => `'${t}'`).join(', ')}`);
      }
      if (op === 'in')
        return (v) =>
          v.risk_tier === undefined ? undefined : ranks.includes(RISK_TIERS.indexOf(v.risk_tier));
      return (v) =>
        v.risk_tier === undefined
          ? undefined
          : compare(op, RISK_TIERS.indexOf(v.risk_tier), ranks[0]!);
    }
    case 'string': {
      const values = list ?? [lit as Literal];
      if (values.some((x) => typeof x !== 'string')) fail(name, op, 'expects quoted strings');
      const strs = values as string[];
      const read = (v: AttributeValues): string | undefined =>
        name === 'acr' ? v.acr : name === 'client_id' ? v.client_id : v.peer_spiffe_id;
      if (op === 'in') return (v) => (read(v) === undefined ? undefined : strs.includes(read(v)!));
      if (op !== '==' && op !== '!=') fail(name, op, 'compare with ==, != or in');
      return (v) => (read(v) === undefined ? undefined : (read(v) === strs[0]) === (op === '=='));
    }
  }
}
