import protobuf from 'protobufjs';
import { formatPath, isRecord, jsonName, type PathSegment } from './config-path.ts';
import { checkEnum, checkMapKey, missingRequired, suggest, typeName } from './field-checks.ts';
import {
  checkDuration,
  checkFieldMask,
  checkScalar,
  checkTimestamp,
  describe,
  WRAPPER_SCALARS,
} from './json-scalars.ts';
import { checkListRules, checkValueRules } from './pgv-rules.ts';
import type { EnvoySchema } from './proto-schema.ts';

/** One finding about a config, located by its YAML path. */
export interface ConfigIssue {
  severity: 'error' | 'warning';
  /** Path as written in the file, e.g. `static_resources.clusters[0].connect_timeout`. */
  path: string;
  segments: PathSegment[];
  message: string;
  /** 1-based line in the source file, when known. */
  line?: number;
}

/** Called for every field present in the config, after its value was checked. */
export type FieldObserver = (field: protobuf.Field, value: unknown, at: PathSegment[]) => void;

/** State shared by one walk over a config. */
export interface WalkContext {
  schema: EnvoySchema;
  issues: ConfigIssue[];
  observe?: FieldObserver;
}

const ANY = '.google.protobuf.Any';

/**
 * Checks `value` (a parsed YAML/JSON mapping) against the message `type` with the proto3 JSON
 * rules: field names in proto or lowerCamelCase form, scalar and enum types, well-known types
 * (Any, Duration, Timestamp, wrappers, Struct, Value, FieldMask, Empty), oneofs, and the
 * `protoc-gen-validate` rules Envoy enforces at load time (required messages and oneofs,
 * non-empty strings, minimum list sizes).
 */
export function walkMessage(
  value: unknown,
  type: protobuf.Type,
  at: PathSegment[],
  ctx: WalkContext,
): void {
  if (value === null) return; // proto3 JSON: null means the default
  if (walkWellKnown(value, type, at, ctx)) return;
  if (!isRecord(value)) {
    report(ctx, at, `expected a mapping for ${typeName(type)}, got ${describe(value)}`);
    return;
  }
  walkFields(value, type, at, ctx, new Set());
}

function walkFields(
  value: Record<string, unknown>,
  type: protobuf.Type,
  at: PathSegment[],
  ctx: WalkContext,
  skip: ReadonlySet<string>,
): void {
  const byName = fieldIndex(type);
  const seen = new Map<protobuf.Field, string>();
  const oneofs = new Map<string, string>();
  for (const [key, child] of Object.entries(value)) {
    if (skip.has(key)) continue;
    const field = byName.get(key);
    const path = [...at, key];
    if (!field) {
      report(ctx, path, `unknown field "${key}" in ${typeName(type)}${suggest(key, type)}`);
      continue;
    }
    const earlier = seen.get(field);
    if (earlier !== undefined) {
      report(ctx, path, `field "${field.name}" is given twice (also as "${earlier}")`);
      continue;
    }
    seen.set(field, key);
    if (child === null) continue;
    if (field.partOf) {
      const other = oneofs.get(field.partOf.name);
      if (other !== undefined) {
        report(
          ctx,
          path,
          `"${key}" and "${other}" are both set, but only one of ${field.partOf.name} may be`,
        );
      }
      oneofs.set(field.partOf.name, key);
    }
    if (field.options?.['deprecated'] === true) {
      report(ctx, path, `field "${field.name}" is deprecated in ${typeName(type)}`, 'warning');
    }
    walkField(child, field, path, ctx);
    ctx.observe?.(field, child, path);
  }
  for (const problem of missingRequired(type, seen, oneofs)) report(ctx, at, problem);
}

function walkField(
  value: unknown,
  field: protobuf.Field,
  at: PathSegment[],
  ctx: WalkContext,
): void {
  if (field.map) {
    if (!isRecord(value)) {
      report(ctx, at, `expected a mapping for map field "${field.name}", got ${describe(value)}`);
      return;
    }
    const keyType = (field as unknown as protobuf.MapField).keyType;
    for (const [key, item] of Object.entries(value)) {
      const keyProblem = checkMapKey(keyType, key);
      if (keyProblem) report(ctx, [...at, key], `map key: ${keyProblem}`);
      walkSingle(item, field, [...at, key], ctx);
    }
    return;
  }
  if (field.repeated) {
    if (!Array.isArray(value)) {
      report(ctx, at, `expected a list for repeated field "${field.name}", got ${describe(value)}`);
      return;
    }
    const listProblem = checkListRules(field, value);
    if (listProblem) report(ctx, at, listProblem);
    value.forEach((item: unknown, index) => walkSingle(item, field, [...at, index], ctx));
    return;
  }
  walkSingle(value, field, at, ctx);
}

function walkSingle(
  value: unknown,
  field: protobuf.Field,
  at: PathSegment[],
  ctx: WalkContext,
): void {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) {
    if (value === null && resolved.fullName !== '.google.protobuf.Value') {
      report(ctx, at, `null is not allowed here (${typeName(resolved)})`);
      return;
    }
    const before = ctx.issues.length;
    walkMessage(value, resolved, at, ctx);
    const wrapped = WRAPPER_SCALARS[resolved.fullName];
    // Wrapper types carry the rules of the scalar they wrap.
    if (wrapped && ctx.issues.length === before) reportRule(ctx, at, field, wrapped, value);
    return;
  }
  if (resolved instanceof protobuf.Enum) {
    const problem = checkEnum(value, resolved, field);
    if (typeof problem === 'string') report(ctx, at, problem);
    else if (problem) report(ctx, at, problem.warning, 'warning');
    return;
  }
  const problem = checkScalar(field.type, value);
  if (problem) report(ctx, at, problem);
  else reportRule(ctx, at, field, field.type, value);
}

function reportRule(
  ctx: WalkContext,
  at: PathSegment[],
  field: protobuf.Field,
  scalarType: string,
  value: unknown,
): void {
  const problem = checkValueRules(field, scalarType, value);
  if (problem) report(ctx, at, problem);
}

/** Types whose JSON form is not a mapping of their fields; returns true when handled. */
function walkWellKnown(
  value: unknown,
  type: protobuf.Type,
  at: PathSegment[],
  ctx: WalkContext,
): boolean {
  const name = type.fullName;
  const wrapped = WRAPPER_SCALARS[name];
  let problem: string | undefined;
  if (wrapped) problem = checkScalar(wrapped, value);
  else if (name === ANY) return walkAny(value, at, ctx);
  else if (name === '.google.protobuf.Duration') problem = checkDuration(value);
  else if (name === '.google.protobuf.Timestamp') problem = checkTimestamp(value);
  else if (name === '.google.protobuf.FieldMask') problem = checkFieldMask(value);
  else if (name === '.google.protobuf.Value') return true;
  else if (name === '.google.protobuf.Struct' || name === '.google.protobuf.Empty') {
    if (!isRecord(value)) problem = `expected a mapping, got ${describe(value)}`;
    else if (name === '.google.protobuf.Empty' && Object.keys(value).length > 0) {
      problem = 'expected an empty mapping {}';
    }
  } else if (name === '.google.protobuf.ListValue') {
    if (!Array.isArray(value)) problem = `expected a list, got ${describe(value)}`;
  } else return false;
  if (problem) report(ctx, at, problem);
  return true;
}

/** `Any`: `{ "@type": "type.googleapis.com/<message>", ...fields }` or `{ "@type", value }`. */
function walkAny(value: unknown, at: PathSegment[], ctx: WalkContext): boolean {
  if (!isRecord(value)) {
    report(ctx, at, `expected a mapping with "@type", got ${describe(value)}`);
    return true;
  }
  const url = value['@type'];
  if (Object.keys(value).length === 0) {
    // Envoy then finds the extension by its `name` alone.
    report(ctx, at, 'empty typed_config: name the message with "@type"', 'warning');
    return true;
  }
  if (typeof url !== 'string' || url === '') {
    report(ctx, at, 'missing "@type": an Any needs the type URL of the message it holds');
    return true;
  }
  const name = url.slice(url.lastIndexOf('/') + 1);
  const type = ctx.schema.findMessage(name);
  if (!type) {
    report(ctx, [...at, '@type'], `cannot resolve type "${url}": ${ctx.schema.whyMissing(name)}`);
    return true;
  }
  const special = type.fullName.startsWith('.google.protobuf.') && type.fullName !== ANY;
  if (special && (WRAPPER_SCALARS[type.fullName] || isJsonSpecial(type.fullName))) {
    for (const key of Object.keys(value)) {
      if (key !== '@type' && key !== 'value') report(ctx, [...at, key], `unknown field "${key}"`);
    }
    if ('value' in value) walkMessage(value['value'], type, [...at, 'value'], ctx);
    return true;
  }
  walkFields(value, type, at, ctx, new Set(['@type']));
  return true;
}

function isJsonSpecial(fullName: string): boolean {
  return [
    '.google.protobuf.Duration',
    '.google.protobuf.Timestamp',
    '.google.protobuf.FieldMask',
    '.google.protobuf.Struct',
    '.google.protobuf.Value',
    '.google.protobuf.ListValue',
  ].includes(fullName);
}

const indexes = new WeakMap<protobuf.Type, Map<string, protobuf.Field>>();

function fieldIndex(type: protobuf.Type): Map<string, protobuf.Field> {
  let index = indexes.get(type);
  if (!index) {
    index = new Map();
    for (const field of type.fieldsArray) {
      index.set(field.name, field);
      index.set(jsonName(field.name), field);
    }
    indexes.set(type, index);
  }
  return index;
}

function report(
  ctx: WalkContext,
  at: PathSegment[],
  message: string,
  severity: ConfigIssue['severity'] = 'error',
): void {
  ctx.issues.push({ severity, path: formatPath(at), segments: [...at], message });
}
