/**
 * grpc-js options the kit sets on every server and channel it creates (callers may override
 * them through `grpcOptions` / `channelOptions`).
 *
 * Channelz is off: the mesh serves no channelz service, so nobody could read what it records,
 * and recording it costs every call a few timestamps and counter updates on both sides.
 *
 * @example
 * ```ts
 * // A plain grpc-js server configured like a mesh server, minus TLS and the kit's interceptors.
 * const server = new Server({ ...MESH_GRPC_OPTIONS });
 * ```
 */
export const MESH_GRPC_OPTIONS = { 'grpc.enable_channelz': 0 } as const;
