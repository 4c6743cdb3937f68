import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { loadPackageDefinition, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

/** proto-loader options shared by the server and test clients (camelCase fields, enum names). */
export const ENVOY_LOADER_OPTIONS = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
} as const;

let cached: { service: ServiceDefinition; client: unknown } | undefined;

/** The include directories of Envoy's protos shipped in `@grpc/grpc-js-xds`. */
export function envoyProtoIncludeDirs(): string[] {
  const require = createRequire(import.meta.url);
  const root = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  return ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(root, d));
}

/**
 * Loads `envoy.service.auth.v3.Authorization` from Envoy's own protos at run time (they are
 * never copied into the repository). Returns the service definition and the client class.
 */
export function loadEnvoyAuthorization(): { service: ServiceDefinition; client: unknown } {
  if (cached) return cached;
  const definition = loadSync('envoy/service/auth/v3/external_auth.proto', {
    ...ENVOY_LOADER_OPTIONS,
    includeDirs: envoyProtoIncludeDirs(),
  });
  const pkg = loadPackageDefinition(definition) as unknown as {
    envoy: { service: { auth: { v3: { Authorization: { service: ServiceDefinition } } } } };
  };
  const client = pkg.envoy.service.auth.v3.Authorization;
  cached = { service: client.service, client };
  return cached;
}

/** A `google.protobuf.Struct` as proto-loader decodes it (with `oneofs: true`). */
export interface StructValue {
  fields?: Record<string, ProtoValue>;
}
interface ProtoValue {
  kind?: string;
  nullValue?: unknown;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: StructValue;
  listValue?: { values?: ProtoValue[] };
}

function valueToJson(v: ProtoValue, depth: number): unknown {
  if (depth > 16) return undefined;
  // proto-loader names the set field in `kind`; objects built by hand may only carry the field.
  const kind =
    v.kind ??
    ['numberValue', 'stringValue', 'boolValue', 'structValue', 'listValue'].find(
      (k) => v[k as keyof ProtoValue] !== undefined,
    );
  switch (kind) {
    case 'numberValue':
      return v.numberValue;
    case 'stringValue':
      return v.stringValue;
    case 'boolValue':
      return v.boolValue;
    case 'structValue':
      return structToJson(v.structValue ?? {}, depth + 1);
    case 'listValue':
      return (v.listValue?.values ?? []).map((x) => valueToJson(x, depth + 1));
    default:
      return null;
  }
}

/** Converts a decoded Struct to plain JSON. */
export function structToJson(s: StructValue, depth = 0): Record<string, unknown> {
  // No prototype: a key named `__proto__` stays an ordinary key.
  const out = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of Object.entries(s.fields ?? {})) out[k] = valueToJson(v, depth);
  return out;
}

function jsonToValue(v: unknown): ProtoValue {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(jsonToValue) } };
  return { structValue: jsonToStruct(v as Record<string, unknown>) };
}

/** Converts plain JSON to a Struct (for tests that play Envoy). */
export function jsonToStruct(json: Record<string, unknown>): StructValue {
  return { fields: Object.fromEntries(Object.entries(json).map(([k, v]) => [k, jsonToValue(v)])) };
}
