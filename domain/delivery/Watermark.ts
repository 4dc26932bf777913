/**
 * How far a destination lane's continuous package is delivered, kept durably so that a continuous
 * chunk published to DELIVER a second time is not sent again. The package outbox forgets its rows
 * after publishing them; a crash in between, with the publisher down past JetStream's 2-minute
 * duplicate window, publishes them again as new messages, which the deliverer may already have
 * delivered and acknowledged. Pure; stored per lane by the DeliveryLedger.
 *
 * A continuous chunk's key is `(toPosition, seq)`: packaging writes a lane's chunks in event-store
 * order, so `toPosition` never decreases from one to the next, and `seq` (numbered per lane) breaks
 * the tie of one event's records spread over several chunks; the key increases in publishing order.
 * The watermark holds the highest key such that it and every continuous chunk before it is settled
 * (each request has a receipt or a dead letter), plus the chunks settled past it out of order (a lane
 * holds a few chunks at once, and a later one may settle first). It is written before the chunk's
 * ack: a crash between the two hands the chunk out again, which the watermark then skips whole (its
 * receipts would have skipped its requests anyway). It belongs to one incarnation of the destination.
 *
 * Refresh and withdrawal chunks are numbered per package, not in the lane's order, so the watermark
 * keeps instead the ids of the last `refreshesKept` of them settled: as many as one round of the
 * outbox publisher, the most it publishes again after a crash, so that between a chunk and its copy
 * a lane settles at most the rest of that round (copies are skipped, not settled again). Replays go
 * through the outbox too (since stop 21), and are kept the same way.
 */
import { Schema } from "effect"
import { type Chunk, chunkId } from "./Chunk.ts"
import { Incarnation } from "./Incarnation.ts"

/** The KV bucket of the watermarks, key `<destination>.<lane>`: kept without a time to live. */
export const deliveryWatermarkBucket = "tributary-delivery-watermarks"

/** Refresh and withdrawal chunks a lane remembers as settled: one round of the package outbox publisher. */
export const refreshesKept = 64

/** `(toPosition, seq)` of a continuous chunk. */
export const ChunkKey = Schema.Tuple([Schema.Int, Schema.Int])
export type ChunkKey = typeof ChunkKey.Type

export const Watermark = Schema.Struct({
  incarnation: Schema.optionalKey(Incarnation),
  /** every continuous chunk up to this key is settled; `[-1, -1]` before any */
  upTo: ChunkKey,
  /** chunks settled past `upTo` while an earlier one was still being sent */
  ahead: Schema.Array(ChunkKey),
  /** the ids of the last refresh and withdrawal chunks settled, oldest first */
  refreshes: Schema.Array(Schema.String)
}).annotate({ identifier: "DeliveryWatermark" })
export type Watermark = typeof Watermark.Type

export const empty = (incarnation: number | undefined): Watermark => ({
  ...(incarnation === undefined ? {} : { incarnation }),
  upTo: [-1, -1],
  ahead: [],
  refreshes: []
})

/** The watermark as a lane of `incarnation` may use it: another incarnation's counts for nothing. */
export const forIncarnation = (watermark: Watermark | undefined, incarnation: number | undefined): Watermark =>
  watermark === undefined || watermark.incarnation !== incarnation ? empty(incarnation) : watermark

/** The key of a continuous chunk; none for the others (refreshes, replays), which the watermark does not cover. */
export const keyOf = (chunk: Pick<Chunk, "kind" | "toPosition" | "seq">): ChunkKey | undefined =>
  chunk.kind === "continuous" && chunk.toPosition !== undefined ? [chunk.toPosition, chunk.seq] : undefined

/** The id of a refresh, withdrawal or replay chunk (one the package outbox may publish again); none for continuous ones. */
export const refreshIdOf = (chunk: Chunk): string | undefined =>
  chunk.kind === "refresh" ? chunkId(chunk) : undefined

const compare = (a: ChunkKey, b: ChunkKey): number => a[0] - b[0] || a[1] - b[1]

/** Whether the refresh chunk of this id was settled already: skip it. */
export const coversRefresh = (watermark: Watermark, id: string): boolean => watermark.refreshes.includes(id)

/** The watermark once the refresh chunk of this id is settled. */
export const settleRefresh = (watermark: Watermark, id: string): Watermark => ({
  ...watermark,
  refreshes: [...watermark.refreshes, id].slice(-refreshesKept)
})

/** Whether the chunk of this key was settled already: skip it. */
export const covers = (watermark: Watermark, key: ChunkKey): boolean =>
  compare(key, watermark.upTo) <= 0 || watermark.ahead.some((k) => compare(k, key) === 0)

/**
 * The watermark once the chunk of `key` is settled. `oldestUnsettled`: the first continuous chunk the
 * lane holds and has not settled (none: every one it holds is); chunks before it in the lane are all
 * settled (the lane takes them in order, and each earlier one was acknowledged after it settled).
 */
export const settle = (watermark: Watermark, key: ChunkKey, oldestUnsettled: ChunkKey | undefined): Watermark => {
  const settled = [...watermark.ahead, key]
  const below = oldestUnsettled === undefined ? settled : settled.filter((k) => compare(k, oldestUnsettled) < 0)
  const upTo = below.reduce((max, k) => (compare(k, max) > 0 ? k : max), watermark.upTo)
  return { ...watermark, upTo, ahead: settled.filter((k) => compare(k, upTo) > 0).sort(compare) }
}
