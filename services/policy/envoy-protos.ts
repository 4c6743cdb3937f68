import { loadEnvoyGrpcService, type EnvoyGrpcService } from '../../mesh/envoy/grpc-services.ts';

/**
 * `envoy.service.auth.v3.Authorization` from Envoy's own protos (loaded at run time, cached):
 * the service definition and the client class.
 */
export function loadEnvoyAuthorization(): EnvoyGrpcService {
  return loadEnvoyGrpcService(
    'envoy/service/auth/v3/external_auth.proto',
    'envoy.service.auth.v3.Authorization',
  );
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
