/**
 * What a destination must receive (issue 9): package chunks on DELIVER (`deliver.<destination>.<lane>`),
 * each a bounded list of loader records in the order their changes were committed. A chunk is
 * identified by `(destination, lane, packageId, seq)`; a request's `Idempotency-Key` is derived from the
 * chunk and the places of the records it carries, so a retry — by this process or by the one that takes the
 * destination over — carries the same key.
 */
import { Schema } from "effect"
import { IdKind, Operation, UserId } from "../ingest/LoaderRecord.ts"
import { Uint64String } from "../ids.ts"
import { IsoDateTime } from "../isoDateTime.ts"
import { Incarnation } from "./Incarnation.ts"

/**
 * A record as the partner receives it: the loader record contract (an expiry is sent as `remove`).
 * Public: partners' APIs receive these fields.
 */
export const DeliveryRecord = Schema.Struct({
  idKind: IdKind,
  userId: UserId,
  segmentId: Uint64String,
  op: Operation,
  time: IsoDateTime
}).annotate({ identifier: "DeliveryRecord" })
export type DeliveryRecord = typeof DeliveryRecord.Type

export const PackageKind = Schema.Literals(["continuous", "refresh"])
export type PackageKind = typeof PackageKind.Type

export const Chunk = Schema.Struct({
  destination: Schema.String,
  /** the lane (0 unless the destination is split over several owners): a user's records always take the same one */
  lane: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  /**
   * the lane count its records were split over (a user's lane is hash(user) mod this): the package
   * publisher keeps two splits of a destination apart on DELIVER. Absent on chunks written before it was stamped.
   */
  lanes: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))),
  /** `continuous` for the membership changes as they happen; a refresh's own id otherwise */
  packageId: Schema.String,
  kind: PackageKind,
  /** the chunk's place in its package and lane, from 0 */
  seq: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  /**
   * continuous: the event store positions the chunk covers (first..last): with `seq`, its place in
   * the lane, by which the deliverer skips a chunk it already sent (domain/delivery/Watermark.ts)
   */
  fromPosition: Schema.optionalKey(Schema.Int),
  toPosition: Schema.optionalKey(Schema.Int),
  /** the destination's incarnation it was packaged for; absent on chunks written before incarnations (they belong to whatever exists) */
  incarnation: Schema.optionalKey(Incarnation),
  records: Schema.Array(DeliveryRecord)
}).annotate({ identifier: "Chunk" })
export type Chunk = typeof Chunk.Type

/** The id of a chunk, also its `Nats-Msg-Id` on DELIVER. */
export const chunkId = (chunk: Pick<Chunk, "destination" | "lane" | "packageId" | "seq">): string =>
  `${chunk.destination}.${chunk.lane}.${chunk.packageId}.${chunk.seq}`

/**
 * The `Idempotency-Key` of the request carrying a chunk's records `from`..`to` (places from 0, both
 * included): `<chunk>.<from>` for one record, `<chunk>.<from>-<to>` for several. It names records, not
 * the request's place, so a receipt says which records were delivered whatever the grouping was.
 */
export const idempotencyKey = (chunk: Pick<Chunk, "destination" | "lane" | "packageId" | "seq">, from: number, to = from): string =>
  to === from ? `${chunkId(chunk)}.${from}` : `${chunkId(chunk)}.${from}-${to}`

/**
 * A record at its longest as JSON: a 256-character user id of characters JSON writes in six (`\u0001`),
 * a 20-digit segment id, the longest id kind and op, a time of nine digits of fraction and an offset.
 */
const longestRecord: DeliveryRecord = {
  idKind: "email_sha256",
  userId: "\u0001".repeat(256),
  segmentId: "18446744073709551615",
  op: "remove",
  time: "2026-01-01T00:00:00.123456789+00:00"
}

/**
 * The most bytes a chunk of `records` records can take on DELIVER: each record at its longest, and the
 * chunk's own fields with room to spare (a destination id of 63 characters, a refresh's package id).
 */
export const largestChunkBytes = (records: number): number =>
  records * (JSON.stringify(longestRecord).length + 1) + 1_024 // ASCII: characters are bytes
