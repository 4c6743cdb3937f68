/**
 * The closed catalogue of request attributes that policy conditions may read. A condition
 * that names anything else is refused when the policy loads.
 */

/** Risk tiers, in increasing order (so conditions may compare them with `<`, `>=`). */
export const RISK_TIERS = ['unspecified', 'low', 'medium', 'high'] as const;
export type RiskTierName = (typeof RISK_TIERS)[number];

/** Value kinds an attribute can have; each kind admits its own operators. */
export type AttributeKind = 'enum' | 'string' | 'bool' | 'number' | 'ip' | 'set';

/** Every attribute a condition may name, with its kind. */
export const ATTRIBUTE_KINDS = {
  /** Risk tier of the target model (from the policy's model catalogue when declared there). */
  risk_tier: 'enum',
  /** `acr` claim of the token, e.g. `mfa`. */
  acr: 'string',
  /** Whether the token is bound to the client certificate (RFC 8705). */
  certificate_bound: 'bool',
  /** Hour of the request, 0-23, UTC. */
  hour: 'number',
  /** Number of inputs in the inference batch. */
  batch_size: 'number',
  /** Source IP address of the end client. */
  source_address: 'ip',
  /** SPIFFE ID of the calling workload. */
  peer_spiffe_id: 'string',
  /** OAuth client id. */
  client_id: 'string',
  /** Scopes granted to the token. */
  scopes: 'set',
} as const satisfies Record<string, AttributeKind>;

export type AttributeName = keyof typeof ATTRIBUTE_KINDS;

/** Attribute values after normalisation; an absent attribute is `undefined`. */
export interface AttributeValues {
  risk_tier?: RiskTierName;
  acr?: string;
  certificate_bound?: boolean;
  hour?: number;
  batch_size?: number;
  source_address?: string;
  peer_spiffe_id?: string;
  client_id?: string;
  scopes?: readonly string[];
}

/** Attributes as a caller supplies them (time instead of hour). */
export interface RequestAttributes extends Omit<AttributeValues, 'hour'> {
  /** Time of the request; the engine's clock is used when absent. */
  time?: Date;
}

export function isAttributeName(name: string): name is AttributeName {
  return Object.hasOwn(ATTRIBUTE_KINDS, name);
}

/**
 * Stable text form of normalised attributes, used in decision cache keys. Only attributes that
 * conditions can read take part, so two requests with the same key always decide the same way.
 */
export function attributeKey(values: AttributeValues): string {
  // JSON keeps the key unambiguous whatever characters a caller puts into a string attribute.
  return JSON.stringify([
    values.risk_tier ?? null,
    values.acr ?? null,
    values.certificate_bound ?? null,
    values.hour ?? null,
    values.batch_size ?? null,
    values.source_address ?? null,
    values.peer_spiffe_id ?? null,
    values.client_id ?? null,
    values.scopes ? [...values.scopes].sort() : null,
  ]);
}
