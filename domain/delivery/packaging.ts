/**
 * Packaging, pure: what a destination takes (its segments and lanes, read from its entity's fields),
 * which lane a user's records take, and how records in commit order become bounded chunks per lane.
 * The projection (projections/delivery/packages.ts) and the refresh both pack with `lanePacker`, so a
 * chunk never holds more than `maxRecords` records and keeps the order records were given in.
 */
import { Schema } from "effect"
import { Uint64String } from "../ids.ts"
import { parseProfileId } from "../ingest/LoaderRecord.ts"
import type { Chunk, DeliveryRecord, PackageKind } from "./Chunk.ts"

/** Records per chunk unless configured: a chunk is one JetStream message (1,000 records ≈ 150 kB). */
export const defaultChunkRecords = 1_000

/**
 * What packaging needs of a destination entity (type `destination`): the segments it receives, its
 * lanes (1 unless split over owners) and its refresh period. The other fields are the deliverer's.
 */
export const DestinationTargets = Schema.Struct({
  segmentIds: Schema.Array(Uint64String),
  lanes: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1), Schema.isLessThanOrEqualTo(64))),
  /** seconds between scheduled refreshes; none: refresh on request only */
  refreshEvery: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)))
})
export type DestinationTargets = typeof DestinationTargets.Type

const decodeTargets = Schema.decodeUnknownOption(DestinationTargets)

/** The targets of a destination's fields; undefined when they do not decode (then it receives nothing). */
export const targetsOf = (fields: unknown): DestinationTargets | undefined => {
  const decoded = decodeTargets(fields)
  return decoded._tag === "Some" ? decoded.value : undefined
}

/** FNV-1a, 32 bits: stable across processes and versions, unlike any runtime hash. */
const fnv1a = (s: string): number => {
  let hash = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    hash ^= s.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}

/** A user's lane: a stable hash of the profile id, so every record of that user takes the same lane. */
export const laneOf = (profileId: string, lanes: number): number => lanes <= 1 ? 0 : fnv1a(profileId) % lanes

/** The record a partner receives for a profile's membership change; undefined for an id that is no profile's. */
export const deliveryRecord = (profileId: string, segmentId: string, op: "add" | "remove", time: string): DeliveryRecord | undefined => {
  const user = parseProfileId(profileId)
  return user === undefined ? undefined : { idKind: user.idKind, userId: user.userId, segmentId, op, time }
}

/** A chunk before its `seq` is given (the store numbers chunks per package and lane). */
export type PackedChunk = Omit<Chunk, "seq">

/**
 * A destination as a record's chunk names it: its id, the lane count its users are split over, and its
 * incarnation (none in a delivery.db from before incarnations; flush before it changes).
 */
export interface Split {
  readonly destination: string
  readonly lanes: number
  readonly incarnation?: number | null | undefined
}

/**
 * Packs records, given in commit order, into chunks per (destination, lane count, lane) of at most
 * `maxRecords`, each stamped with the lane count it was split for. `emit` receives each full chunk at
 * once (so memory stays bounded, whatever the input); `flush` emits what is left, in the order the
 * lanes were first used.
 */
export interface LanePacker {
  /** `position`: the event store position of the change (continuous packages), for the chunk's range. */
  readonly add: (split: Split, lane: number, record: DeliveryRecord, position?: number) => void
  readonly flush: () => void
}

export const lanePacker = (options: {
  readonly packageId: string
  readonly kind: PackageKind
  readonly maxRecords: number
  readonly emit: (chunk: PackedChunk) => void
}): LanePacker => {
  const open = new Map<string, OpenChunk>()
  const close = (chunk: OpenChunk): PackedChunk => ({
    destination: chunk.destination,
    lane: chunk.lane,
    lanes: chunk.lanes,
    packageId: options.packageId,
    kind: options.kind,
    ...(chunk.fromPosition === undefined ? {} : { fromPosition: chunk.fromPosition }),
    ...(chunk.toPosition === undefined ? {} : { toPosition: chunk.toPosition }),
    ...(chunk.incarnation === undefined ? {} : { incarnation: chunk.incarnation }),
    records: chunk.records
  })
  return {
    add: ({ destination, lanes, incarnation }, lane, record, position) => {
      const key = `${destination}\u0000${lanes}\u0000${lane}`
      let chunk = open.get(key)
      if (chunk === undefined) {
        chunk = { destination, lanes, lane, incarnation: incarnation ?? undefined, records: [] }
        open.set(key, chunk)
      }
      chunk.records.push(record)
      if (position !== undefined) {
        chunk.fromPosition ??= position
        chunk.toPosition = position
      }
      if (chunk.records.length >= options.maxRecords) {
        open.delete(key)
        options.emit(close(chunk))
      }
    },
    flush: () => {
      for (const chunk of open.values()) options.emit(close(chunk))
      open.clear()
    }
  }
}

interface OpenChunk {
  readonly destination: string
  readonly lanes: number
  readonly lane: number
  readonly incarnation: number | undefined
  fromPosition?: number
  toPosition?: number
  readonly records: Array<DeliveryRecord>
}
