/**
 * A dead letter sent again (issue 9 item 6): its records become a new package, `replay-<uuid v7>`, so
 * every request gets a new Idempotency-Key (the partner must not take it for a retry of the request it
 * refused). The package id does not hold the dead letter's: a letter replayed and refused again and
 * again keeps an id of the same length, one the API still takes. Each record goes to its user's lane,
 * as packages put it there, so a replay keeps to the lane that orders that user's changes. A replay
 * goes into the package outbox after what it holds, and reaches DELIVER as the lanes make room, past
 * their lane barrier like any package (laneBarrier.ts); it sends records as they were and promises no
 * order against the user's other records. (Until stop 21 it went straight onto DELIVER, which refused
 * it while the lane was full: exactly while its destination waited for room on DLQ.) Pure.
 */
import { profileId } from "../ingest/LoaderRecord.ts"
import type { Chunk, DeliveryRecord } from "./Chunk.ts"
import type { DeadLetter } from "./DeadLetter.ts"
import { laneOf } from "./packaging.ts"

/** A record's lane among `lanes`: its user's, as packages put it (domain/delivery/packaging.ts). */
export const laneOfRecord = (record: Pick<DeliveryRecord, "idKind" | "userId">, lanes: number): number =>
  laneOf(profileId(record.idKind, record.userId), lanes)

export const replayPackageId = (uuid: string): string => `replay-${uuid}`

/** The chunks that send `deadLetter`'s records again: one per lane they fall in, in their order, for the destination's `incarnation` now. */
export const replayChunks = (
  deadLetter: DeadLetter,
  options: { readonly uuid: string; readonly lanes: number; readonly incarnation?: number }
): ReadonlyArray<Chunk> => {
  const byLane = new Map<number, Array<DeliveryRecord>>()
  for (const record of deadLetter.records) {
    const lane = laneOfRecord(record, options.lanes)
    const records = byLane.get(lane) ?? []
    records.push(record)
    byLane.set(lane, records)
  }
  const packageId = replayPackageId(options.uuid)
  return [...byLane].map(([lane, records]) => ({
    destination: deadLetter.destination,
    lane,
    lanes: options.lanes,
    packageId,
    kind: "refresh",
    seq: 0,
    ...(options.incarnation === undefined ? {} : { incarnation: options.incarnation }),
    records
  }))
}
