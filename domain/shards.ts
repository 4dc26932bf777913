/**
 * Shards: commands are partitioned by a stable hash of the entity id, so that one process at a time
 * (the shard's lease holder) applies every command of an entity, in CMD order. The hash is part of
 * the subject contract (`cmd.<type>.<shard>.<id>`): changing it, or the shard count of a running
 * platform, moves entities between shards.
 */

/** Default number of shards (`SHARDS`). */
export const defaultShards = 64

/** FNV-1a (32 bits) of the id's UTF-16 code units: stable across processes, machines and versions. */
export const shardOf = (entityId: string, shards: number): number => {
  let hash = 0x811c9dc5
  for (let i = 0; i < entityId.length; i++) hash = Math.imul(hash ^ entityId.charCodeAt(i), 0x01000193)
  return (hash >>> 0) % shards
}
