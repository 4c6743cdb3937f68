import type protobuf from 'protobufjs';
import { editDistance, jsonName } from './config-path.ts';
import { checkScalar, describe } from './json-scalars.ts';

/* Checks on one field or message that need only the descriptors; each returns problems. */

/**
 * An enum value: a value name, or a number (which must be defined when the rules say so). A
 * name in the wrong case is only a warning, as Envoy accepts it.
 */
export function checkEnum(
  value: unknown,
  enumType: protobuf.Enum,
  field: protobuf.Field,
): string | { warning: string } | undefined {
  const names = Object.keys(enumType.values);
  if (typeof value === 'string') {
    if (value in enumType.values) return undefined;
    // Envoy parses enum names case-insensitively; the validator says so without failing.
    if (value.toUpperCase() in enumType.values) {
      return { warning: `write "${value.toUpperCase()}": enum names are upper case` };
    }
    const hint = names.length <= 12 ? ` (one of ${names.join(', ')})` : '';
    return `"${value}" is not a value of enum ${typeName(enumType)}${hint}`;
  }
  if (typeof value === 'number' && Number.isInteger(value)) {
    const definedOnly = field.options?.['(validate.rules).enum.defined_only'] === true;
    if (definedOnly && !Object.values(enumType.values).includes(value)) {
      return `${value} is not a defined number of enum ${typeName(enumType)}`;
    }
    return undefined;
  }
  return `expected a value of enum ${typeName(enumType)}, got ${describe(value)}`;
}

/**
 * Required fields and oneofs (`protoc-gen-validate` rules) missing from a message; `seen` are
 * the fields present, `oneofs` the oneofs with a member set.
 */
export function missingRequired(
  type: protobuf.Type,
  seen: ReadonlyMap<protobuf.Field, string>,
  oneofs: ReadonlyMap<string, string>,
): string[] {
  const problems: string[] = [];
  for (const field of type.fieldsArray) {
    // A oneof member is only checked when it is the one set.
    if (seen.has(field) || field.partOf) continue;
    const options = field.options ?? {};
    const positive = (key: string) => typeof options[key] === 'number' && options[key] > 0;
    const required =
      options['(validate.rules).message.required'] === true ||
      options['(validate.rules).duration.required'] === true ||
      options['(validate.rules).any.required'] === true ||
      positive('(validate.rules).string.min_len') ||
      positive('(validate.rules).repeated.min_items');
    if (required) problems.push(`missing required field "${field.name}" in ${typeName(type)}`);
  }
  for (const oneof of type.oneofsArray) {
    if (oneof.options?.['(validate.required)'] === true && !oneofs.has(oneof.name)) {
      problems.push(`one of ${oneof.oneof.join(', ')} is required in ${typeName(type)}`);
    }
  }
  return problems;
}

/** Map keys are strings in JSON; integer and bool keys must still parse as such. */
export function checkMapKey(keyType: string, key: string): string | undefined {
  if (keyType === 'string') return undefined;
  if (keyType === 'bool') return /^(true|false)$/.test(key) ? undefined : 'expected true or false';
  return checkScalar(keyType, key);
}

/** ` (did you mean "x"?)` for the closest field name, or nothing when none is close. */
export function suggest(key: string, type: protobuf.Type): string {
  let best: string | undefined;
  let bestDistance = 4;
  for (const field of type.fieldsArray) {
    const distance = Math.min(
      editDistance(key, field.name),
      editDistance(key, jsonName(field.name)),
    );
    if (distance < bestDistance) {
      best = field.name;
      bestDistance = distance;
    }
  }
  return best ? ` (did you mean "${best}"?)` : '';
}

/** A type's full name without the leading dot. */
export function typeName(type: protobuf.ReflectionObject): string {
  return type.fullName.replace(/^\./, '');
}
