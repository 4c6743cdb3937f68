import {
  ATTRIBUTE_KINDS,
  isAttributeName,
  type AttributeName,
  type AttributeValues,
} from './attributes.ts';
import { compileComparison, type Evaluator, type Literal } from './condition-compare.ts';
import { ConditionSyntaxError } from './condition-error.ts';

/**
 * The condition language of policy rules: a small, closed grammar that is parsed and
 * type-checked when the policy loads and compiled into plain closures. Nothing in a policy file
 * is ever handed to `eval`, `Function` or Casbin's expression evaluator as code.
 *
 * ```
 * expr       := or
 * or         := and (('||' | 'or') and)*
 * and        := unary (('&&' | 'and') unary)*
 * unary      := ('!' | 'not') unary | '(' expr ')' | 'true' | 'false' | comparison | BOOL_ATTR
 * comparison := ATTR ('==' | '!=' | '<' | '<=' | '>' | '>=' | 'in' | 'has') literal
 * literal    := STRING | NUMBER | 'true' | 'false' | '[' literal (',' literal)* ']'
 * ```
 *
 * Evaluation is three-valued: a comparison that reads an absent attribute is *unknown*. An allow
 * rule applies only when its condition is definitely true; a deny rule applies unless its
 * condition is definitely false, so a missing attribute can never switch a deny off.
 *
 * @example
 * ```ts
 * const c = compileCondition("acr == 'mfa' && batch_size <= 64");
 * c.evaluate({ acr: 'mfa', batch_size: 8 }); // true
 * c.evaluate({ batch_size: 8 });             // undefined (unknown)
 * ```
 */
export interface Condition {
  /** The source text, as written in the policy. */
  readonly source: string;
  /** Attributes the condition reads. */
  readonly attributes: readonly AttributeName[];
  /** `true`, `false`, or `undefined` when an attribute it needs is absent. */
  evaluate(values: AttributeValues): boolean | undefined;
}

export { ConditionSyntaxError };

const MAX_SOURCE_LENGTH = 1024;
const MAX_DEPTH = 16;
const MAX_LIST = 256;

type Token =
  | { kind: 'ident'; text: string; at: number }
  | { kind: 'string'; value: string; at: number }
  | { kind: 'number'; value: number; at: number }
  | { kind: 'op'; text: string; at: number }
  | { kind: 'end'; at: number };

const OPERATORS = ['==', '!=', '<=', '>=', '&&', '||', '<', '>', '!', '(', ')', '[', ']', ','];

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const ch = source[i]!;
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') {
      i += 1;
      continue;
    }
    if (ch === "'" || ch === '"') {
      const end = source.indexOf(ch, i + 1);
      if (end < 0) throw new ConditionSyntaxError(`unterminated string at ${i}`);
      const value = source.slice(i + 1, end);
      if (value.includes('\\')) throw new ConditionSyntaxError(`escapes are not allowed at ${i}`);
      tokens.push({ kind: 'string', value, at: i });
      i = end + 1;
      continue;
    }
    const num = /^-?\d+(\.\d+)?/.exec(source.slice(i));
    if (num && (ch === '-' || (ch >= '0' && ch <= '9'))) {
      tokens.push({ kind: 'number', value: Number(num[0]), at: i });
      i += num[0].length;
      continue;
    }
    const ident = /^[A-Za-z_][A-Za-z0-9_]*/.exec(source.slice(i));
    if (ident) {
      tokens.push({ kind: 'ident', text: ident[0], at: i });
      i += ident[0].length;
      continue;
    }
    const op = OPERATORS.find((o) => source.startsWith(o, i));
    if (!op) throw new ConditionSyntaxError(`unexpected character ${JSON.stringify(ch)} at ${i}`);
    tokens.push({ kind: 'op', text: op, at: i });
    i += op.length;
  }
  tokens.push({ kind: 'end', at: source.length });
  return tokens;
}

function describe(t: Token): string {
  switch (t.kind) {
    case 'end':
      return 'end of condition';
    case 'ident':
    case 'op':
      return `"${t.text}" at ${t.at}`;
    default:
      return `${JSON.stringify(t.value)} at ${t.at}`;
  }
}

class Parser {
  private pos = 0;
  private depth = 0;
  readonly used = new Set<AttributeName>();
  private readonly tokens: Token[];

  constructor(tokens: Token[]) {
    this.tokens = tokens;
  }

  private peek(): Token {
    return this.tokens[this.pos]!;
  }

  private next(): Token {
    const t = this.tokens[this.pos]!;
    if (t.kind !== 'end') this.pos += 1;
    return t;
  }

  private isWord(t: Token, ...words: string[]): boolean {
    return (t.kind === 'op' || t.kind === 'ident') && words.includes(t.text);
  }

  private expect(text: string): void {
    const t = this.next();
    if (!this.isWord(t, text))
      throw new ConditionSyntaxError(`expected "${text}", found ${describe(t)}`);
  }

  parse(): Evaluator {
    const e = this.or();
    const t = this.peek();
    if (t.kind !== 'end') throw new ConditionSyntaxError(`unexpected ${describe(t)}`);
    return e;
  }

  private or(): Evaluator {
    let left = this.and();
    while (this.isWord(this.peek(), '||', 'or')) {
      this.next();
      const a = left;
      const b = this.and();
      left = (v) => {
        const x = a(v);
        if (x === true) return true;
        const y = b(v);
        if (y === true) return true;
        return x === false && y === false ? false : undefined;
      };
    }
    return left;
  }

  private and(): Evaluator {
    let left = this.unary();
    while (this.isWord(this.peek(), '&&', 'and')) {
      this.next();
      const a = left;
      const b = this.unary();
      left = (v) => {
        const x = a(v);
        if (x === false) return false;
        const y = b(v);
        if (y === false) return false;
        return x === true && y === true ? true : undefined;
      };
    }
    return left;
  }

  private unary(): Evaluator {
    this.depth += 1;
    if (this.depth > MAX_DEPTH) throw new ConditionSyntaxError('condition nests too deeply');
    try {
      const t = this.peek();
      if (this.isWord(t, '!', 'not')) {
        this.next();
        const inner = this.unary();
        return (v) => {
          const x = inner(v);
          return x === undefined ? undefined : !x;
        };
      }
      if (this.isWord(t, '(')) {
        this.next();
        const inner = this.or();
        this.expect(')');
        return inner;
      }
      if (this.isWord(t, 'true', 'false')) {
        this.next();
        const value = t.kind === 'ident' && t.text === 'true';
        return () => value;
      }
      if (t.kind === 'ident') return this.comparison();
      throw new ConditionSyntaxError(`unexpected ${describe(t)}`);
    } finally {
      this.depth -= 1;
    }
  }

  private literal(): Literal | Literal[] {
    const t = this.next();
    if (t.kind === 'string' || t.kind === 'number') return t.value;
    if (this.isWord(t, 'true', 'false')) return t.kind === 'ident' && t.text === 'true';
    if (this.isWord(t, '[')) {
      const items: Literal[] = [];
      for (;;) {
        const item = this.literal();
        if (Array.isArray(item)) throw new ConditionSyntaxError('lists cannot nest');
        items.push(item);
        if (items.length > MAX_LIST) throw new ConditionSyntaxError('list is too long');
        const sep = this.next();
        if (this.isWord(sep, ']')) return items;
        if (!this.isWord(sep, ','))
          throw new ConditionSyntaxError(`expected "," or "]", found ${describe(sep)}`);
      }
    }
    throw new ConditionSyntaxError(`expected a value, found ${describe(t)}`);
  }

  private comparison(): Evaluator {
    const t = this.next() as Extract<Token, { kind: 'ident' }>;
    if (!isAttributeName(t.text)) throw new ConditionSyntaxError(`unknown attribute "${t.text}"`);
    const name = t.text;
    this.used.add(name);
    const kind = ATTRIBUTE_KINDS[name];
    const opToken = this.peek();
    const isOp = this.isWord(opToken, '==', '!=', '<', '<=', '>', '>=', 'in', 'has');
    if (!isOp) {
      if (kind !== 'bool') throw new ConditionSyntaxError(`"${name}" needs a comparison`);
      return (v) => v[name] as boolean | undefined;
    }
    this.next();
    const op = (opToken as { text: string }).text;
    return compileComparison(name, kind, op, this.literal());
  }
}

/**
 * Parses and type-checks a condition. Throws {@link ConditionSyntaxError} naming the problem
 * (unknown attribute, wrong operator for the attribute's kind, bad literal, syntax).
 */
export function compileCondition(source: string): Condition {
  if (source.length > MAX_SOURCE_LENGTH) {
    throw new ConditionSyntaxError(`condition is longer than ${MAX_SOURCE_LENGTH} characters`);
  }
  const parser = new Parser(tokenize(source));
  const evaluator = parser.parse();
  return { source, attributes: [...parser.used], evaluate: evaluator };
}

/** The condition of a rule without one: always true. */
export const ALWAYS: Condition = { source: '', attributes: [], evaluate: () => true };
