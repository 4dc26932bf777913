/**
 * A destination's backlog on DELIVER (`deliver.<destination>.<lane>`, a work queue: a chunk stays until
 * its deliverer settled every record of it). Counting reads no consumer (a work queue allows one per
 * subject, the deliverer's): the stream's per-subject counts give the chunks, and the first
 * `exactChunks` chunks are read for their records (the `Tributary-Records` header when a chunk has
 * it, else its body); beyond those, the rest are counted at the mean of those read.
 */
import { Effect, Layer, Option, Schema } from "effect"
import { DeliveryBacklog, DeliveryBacklogError } from "../../domain/delivery/DeliveryBacklog.ts"
import { allDeliver, destinationLanes, StreamNames } from "../../domain/subjects.ts"
import { Nats, type NatsError, tryNats } from "../nats/Nats.ts"
import { nextSequence, purgeBefore } from "../nats/subjectPurge.ts"

const stream = StreamNames.deliver

/** Chunks read to count their records exactly; a longer backlog is estimated from them. */
export const exactChunks = 64

/** The header a chunk message may carry with its record count, so counting need not parse it (replays published before stop 21 have it). */
export const recordsHeader = "Tributary-Records"

const ChunkRecords = Schema.fromJsonString(Schema.Struct({ records: Schema.Array(Schema.Unknown) }))
const decodeRecords = Schema.decodeUnknownOption(ChunkRecords)

const fail = (operation: string) => (error: NatsError) => new DeliveryBacklogError({ operation, cause: error.cause })

export const make = Effect.gen(function*() {
  const { manager } = yield* Nats

  const backlog = (destination: string) =>
    Effect.gen(function*() {
      const lanes = destinationLanes(destination)
      const info = yield* tryNats("backlog info", () => manager.streams.info(stream, { subjects_filter: lanes })).pipe(Effect.mapError(fail("info")))
      const chunks = Object.values(info.state.subjects ?? {}).reduce((total, n) => total + n, 0)
      let records = 0
      let read = 0
      let seq = 1
      while (read < Math.min(chunks, exactChunks)) {
        const msg = yield* tryNats("read backlog", () => manager.streams.getMessage(stream, { seq, next_by_subj: lanes } as never)).pipe(
          Effect.mapError(fail("read"))
        )
        if (msg === null) break
        seq = msg.seq + 1
        read++
        const header = Number(msg.header.get(recordsHeader))
        records += header > 0 ? header : Option.match(decodeRecords(msg.string()), { onNone: () => 0, onSome: (chunk) => chunk.records.length })
      }
      const estimated = read === 0 || chunks <= read ? records : Math.round(records / read * chunks)
      return { chunks, records: estimated }
    })

  const lanesWaiting = (destination?: string) =>
    Effect.gen(function*() {
      const filter = destination === undefined ? allDeliver : destinationLanes(destination)
      const info = yield* tryNats("lanes waiting", () => manager.streams.info(stream, { subjects_filter: filter })).pipe(Effect.mapError(fail("info")))
      const waiting = new Map<string, Set<number>>()
      for (const [subject, count] of Object.entries(info.state.subjects ?? {})) {
        // deliver.<destination>.<lane>: destination ids have no dots
        const [, id, lane] = subject.split(".")
        if (count <= 0 || id === undefined || !/^\d+$/.test(lane ?? "")) continue
        const lanes = waiting.get(id) ?? new Set<number>()
        lanes.add(Number(lane))
        waiting.set(id, lanes)
      }
      return waiting as ReadonlyMap<string, ReadonlySet<number>>
    })

  return DeliveryBacklog.of({
    backlog,
    lanesWaiting,
    purge: (destination, before) => purgeBefore(manager, stream, destinationLanes(destination), before).pipe(Effect.mapError(fail("purge"))),
    nextSequence: nextSequence(manager, stream).pipe(Effect.mapError(fail("info")))
  })
})

export const layerJetStream: Layer.Layer<DeliveryBacklog, never, Nats> = Layer.effect(DeliveryBacklog, make)
