/** The mesh's resource servers (RFC 8707 indicators) and the scopes each one accepts. */
export const RESOURCES = {
  'urn:bulwark:inference': ['model:infer', 'model:admin'],
  'urn:bulwark:audit': ['audit:read'],
  'urn:bulwark:policy': ['policy:admin'],
} as const satisfies Record<string, readonly string[]>;

export type ResourceIndicator = keyof typeof RESOURCES;

/** Every mesh scope. */
export const MESH_SCOPES: readonly string[] = [...new Set(Object.values(RESOURCES).flat())];

export function isResource(value: unknown): value is ResourceIndicator {
  return typeof value === 'string' && Object.hasOwn(RESOURCES, value);
}
