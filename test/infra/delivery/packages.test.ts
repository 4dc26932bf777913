import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Effect, Layer, Schema } from "effect"
import { Chunk, chunkId } from "../../../domain/delivery/Chunk.ts"
import { laneOf } from "../../../domain/delivery/packaging.ts"
import { deliverSubject, destinationLanes, StreamNames } from "../../../domain/subjects.ts"
import { layerJetStream as deliveryBacklog } from "../../../infra/delivery/deliveryBacklog.ts"
import { layer as packages } from "../../../infra/delivery/packages.ts"
import { toEnvelopes } from "../../../domain/envelope.ts"
import { EventStore } from "../../../domain/EventStore.ts"
import { publishOutbox } from "../../../infra/delivery/outboxPublisher.ts"
import { PackagesDb } from "../../../infra/delivery/packagesDb.ts"
import { layerSqlite as eventStore } from "../../../infra/eventstore/sqlite.ts"
import { Nats } from "../../../infra/nats/Nats.ts"
import type { TopologyOptions } from "../../../infra/nats/topology.ts"
import { DeliveryPackages, packagesProjectionName } from "../../../projections/delivery/packages.ts"
import { appendDestinationEvent, createDestination } from "../../fixtures/destinationEvents.ts"
import { brief, deliverChunks, deliverRecords } from "../../fixtures/deliverContents.ts"
import { eventually } from "../../fixtures/http.ts"
import { streamMessages } from "../../fixtures/jetstreamContents.ts"
import { layerTestNats, TestNatsServer } from "../../fixtures/nats.ts"
import { added, appendProfileEvents, expired, removed } from "../../fixtures/segmentEvents.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const S = "9007199254740993" // above 2^53: ids stay strings
const T = "42"
const U = "7"

const decodeChunk = Schema.decodeUnknownSync(Chunk)
const chunksOf = (destination: string) => deliverChunks(destination)
const recordsOf = (destination: string) => deliverRecords(destination)

/** A temp dir, an event store file, a fresh nats-server with the streams, and packaging (chunks of 3 records) in this process. */
const withPackaging = <A, E>(
  test: (dir: string) => Effect.Effect<A, E, EventStore | Nats | DeliveryPackages | PackagesDb | TestNatsServer>,
  topology: TopologyOptions = {},
  maxBacklog?: number
) =>
  Effect.gen(function*() {
    const dir = yield* tempDir("packages")
    const store = eventStore({ path: join(dir, "events.db") })
    const base = Layer.mergeAll(store, layerTestNats(topology))
    return yield* test(dir).pipe(
      Effect.provide(packages({ path: join(dir, "delivery.db"), chunkRecords: 3, ...(maxBacklog === undefined ? {} : { maxBacklog }) }).pipe(Layer.provideMerge(base)))
    )
  }).pipe(Effect.scoped)

type OnDeliver = Effect.Success<ReturnType<typeof chunksOf>>

/**
 * As the destination's deliverer would: takes what DELIVER holds of it (those read into `delivered`, not
 * what the publisher put there since), round by round, until `records` have come; `each` sees a round's chunks.
 */
const drain = (destination: string, delivered: Array<OnDeliver[number]>, records: number, each: (next: OnDeliver) => void = () => {}) =>
  Effect.gen(function*() {
    const { manager } = yield* Nats
    for (let round = 0; round < 20 && delivered.flatMap(({ chunk }) => chunk.records).length < records; round++) {
      yield* Effect.promise(() => manager.streams.purge(StreamNames.deliver, { filter: deliverSubject(destination), seq: delivered.at(-1)!.seq + 1 }))
      const next = yield* eventually(chunksOf(destination), (cs) => cs.length > 0, "40 seconds")
      each(next)
      delivered.push(...next)
    }
  })

describe("delivery packages", () => {
  it.live("sends a destination the add and remove records of its segments only, in commit order, in bounded chunks", () =>
    withPackaging(() =>
      Effect.gen(function*() {
        yield* createDestination("d-one", [S])
        yield* createDestination("d-two", [T])
        yield* appendProfileEvents("cookie:p1", added("a", [S], "2026-03-01T01:00:00Z"))
        yield* appendProfileEvents("cookie:p1", added("b", [S])) // a second partner: still one member
        yield* appendProfileEvents("cookie:p1", added("a", [S])) // a renewal
        yield* appendProfileEvents("cookie:p2", added("a", [S, T, U], "2026-03-01T02:00:00Z"))
        yield* appendProfileEvents("cookie:p3", added("a", [U])) // no destination takes U
        yield* appendProfileEvents("cookie:p1", removed("a", [S])) // b still holds it
        yield* appendProfileEvents("cookie:p1", expired("b", [S], "2026-03-05T00:00:00Z")) // the last one: a remove
        yield* appendProfileEvents("cookie:p2", removed("a", [S], "2026-03-06T00:00:00Z"), removed("c", [T])) // c never held T
        yield* appendProfileEvents("cookie:p4", added("a", [S]))
        yield* appendProfileEvents("cookie:p5", added("a", [S]))

        const one = yield* eventually(recordsOf("d-one"), (records) => records.length >= 6, "40 seconds")
        assert.deepStrictEqual(one.map(brief), [
          `p1 ${S} add`,
          `p2 ${S} add`,
          `p1 ${S} remove`,
          `p2 ${S} remove`,
          `p4 ${S} add`,
          `p5 ${S} add`
        ])
        assert.strictEqual(one[0]!.time, "2026-03-01T01:00:00Z")
        assert.strictEqual(one[2]!.time, "2026-03-05T00:00:00Z", "an expiry is a remove at the expiry's instant")
        assert.strictEqual(one[3]!.time, "2026-03-06T00:00:00Z")
        assert.deepStrictEqual(one.map((r) => r.idKind), Array(6).fill("cookie"))
        assert.deepStrictEqual((yield* recordsOf("d-two")).map(brief), [`p2 ${T} add`])

        const chunks = yield* chunksOf("d-one")
        chunks.forEach(({ chunk, msgId }, i) => {
          assert.strictEqual(chunk.kind, "continuous")
          assert.strictEqual(chunk.packageId, "continuous")
          assert.strictEqual(chunk.seq, i, "chunks numbered per lane from 0, in order")
          assert.strictEqual(msgId, chunkId(chunk))
          assert.isAtMost(chunk.records.length, 3)
          assert.isAtMost(chunk.fromPosition!, chunk.toPosition!)
          if (i > 0) assert.isAbove(chunk.fromPosition!, chunks[i - 1]!.chunk.toPosition!)
        })
        // Nothing else: no subject of a destination that does not exist, nothing for U.
        const subjects = new Set((yield* streamMessages(StreamNames.deliver)).map((m) => m.subject))
        assert.deepStrictEqual([...subjects].sort(), [deliverSubject("d-one"), deliverSubject("d-two")])
      })
    ), 60_000)

  it.live("a refresh holds every current member once, and a later remove comes after it; a new destination gets one", () =>
    withPackaging(() =>
      Effect.gen(function*() {
        yield* createDestination("d-one", [S, T])
        for (let i = 1; i <= 7; i++) yield* appendProfileEvents(`cookie:m${i}`, added("a", [S]))
        yield* appendProfileEvents("cookie:m1", added("b", [S])) // two partners: still one member
        yield* appendProfileEvents("cookie:m2", added("a", [T])) // in both segments: a record for each
        yield* appendProfileEvents("cookie:m7", removed("a", [S])) // gone before the refresh
        // Packaging follows the store: wait until it has seen every change, then refresh.
        yield* eventually(recordsOf("d-one"), (records) => records.length === 9, "40 seconds")
        const refresh = yield* DeliveryPackages.use((p) => p.refresh("d-one"))
        assert.match(refresh.packageId, /^refresh-[0-9a-f-]{36}$/)
        assert.strictEqual(refresh.records, 7)
        yield* appendProfileEvents("cookie:m1", removed("a", [S]), removed("b", [S])) // after the refresh

        const chunks = yield* eventually(chunksOf("d-one"), (cs) => cs.some(({ chunk }) => chunk.records.some((r) => r.userId === "m1" && r.op === "remove")), "40 seconds")
        const refreshChunks = chunks.filter(({ chunk }) => chunk.packageId === refresh.packageId)
        const members = refreshChunks.flatMap(({ chunk }) => chunk.records).map(brief).sort()
        assert.deepStrictEqual(members, [...[1, 2, 3, 4, 5, 6].map((i) => `m${i} ${S} add`), `m2 ${T} add`].sort())
        refreshChunks.forEach(({ chunk }, i) => {
          assert.strictEqual(chunk.kind, "refresh")
          assert.strictEqual(chunk.seq, i)
          assert.isAtMost(chunk.records.length, 3)
        })
        const removal = chunks.find(({ chunk }) => chunk.records.some((r) => r.userId === "m1" && r.op === "remove"))!
        assert.isAbove(removal.seq, Math.max(...refreshChunks.map((c) => c.seq)), "the later remove is after the refresh on DELIVER")

        // A destination created now receives what existed before it: a refresh of its segments at its creation.
        yield* createDestination("d-late", [T])
        const late = yield* eventually(chunksOf("d-late"), (cs) => cs.length > 0, "40 seconds")
        assert.strictEqual(late[0]!.chunk.kind, "refresh")
        assert.deepStrictEqual(late.flatMap(({ chunk }) => chunk.records).map(brief), [`m2 ${T} add`])

        const unknown = yield* Effect.flip(DeliveryPackages.use((p) => p.refresh("nope")))
        assert.strictEqual(unknown._tag, "EntityNotFound")
      })
    ), 60_000)

  it.live("a destination that drops a segment gets a remove for each of its members then, and nothing of it afterwards", () =>
    withPackaging(() =>
      Effect.gen(function*() {
        yield* createDestination("d-one", [S, T])
        for (let i = 1; i <= 4; i++) yield* appendProfileEvents(`cookie:w${i}`, added("a", [S]))
        yield* appendProfileEvents("cookie:w1", added("a", [T]))
        yield* appendProfileEvents("cookie:w4", removed("a", [S])) // gone before the drop: no second remove
        yield* eventually(recordsOf("d-one"), (records) => records.length === 6, "40 seconds")

        yield* appendDestinationEvent("d-one", "EntityUpdated", { changes: { segmentIds: [T] } })
        yield* appendProfileEvents("cookie:w5", added("a", [S])) // S is not the destination's any more
        yield* appendProfileEvents("cookie:w6", added("a", [T])) // T still is

        const chunks = yield* eventually(chunksOf("d-one"), (cs) => cs.some(({ chunk }) => chunk.records.some((r) => r.userId === "w6")), "40 seconds")
        const withdrawal = chunks.filter(({ chunk }) => chunk.packageId.startsWith("withdraw-"))
        assert.isAbove(withdrawal.length, 0)
        withdrawal.forEach(({ chunk }) => assert.strictEqual(chunk.kind, "refresh"))
        assert.deepStrictEqual(withdrawal.flatMap(({ chunk }) => chunk.records).map(brief).sort(), [`w1 ${S} remove`, `w2 ${S} remove`, `w3 ${S} remove`])
        const records = chunks.flatMap(({ chunk }) => chunk.records)
        assert.isFalse(records.some((r) => r.userId === "w5"), "nothing of a dropped segment afterwards")
        assert.deepStrictEqual(records.filter((r) => r.segmentId === T).map(brief), [`w1 ${T} add`, `w6 ${T} add`])
      })
    ), 60_000)

  it.live("chunks carry the incarnation of the destination they were packaged for: a destination deleted and created again under its id is a new one", () =>
    withPackaging(() =>
      Effect.gen(function*() {
        yield* appendProfileEvents("cookie:i1", added("a", [S]))
        yield* createDestination("d-again", [S]) // revision 0: its creation's refresh holds i1
        yield* appendProfileEvents("cookie:i2", added("a", [S]))
        yield* eventually(recordsOf("d-again"), (records) => records.length === 2, "40 seconds")
        yield* appendDestinationEvent("d-again", "EntityDeleted")
        yield* createDestination("d-again", [S]) // revision 2: a new incarnation, with its own refresh
        yield* appendProfileEvents("cookie:i3", added("a", [S]))
        const chunks = yield* eventually(chunksOf("d-again"), (cs) => cs.some(({ chunk }) => chunk.records.some((r) => r.userId === "i3")), "40 seconds")
        const refresh = yield* DeliveryPackages.use((p) => p.refresh("d-again"))
        const all = yield* eventually(chunksOf("d-again"), (cs) => cs.some(({ chunk }) => chunk.packageId === refresh.packageId), "40 seconds")
        assert.deepStrictEqual(
          chunks.map(({ chunk }) => `${chunk.kind} ${chunk.records.map((r) => r.userId).join(",")} @${chunk.incarnation}`),
          ["refresh i1 @0", "continuous i2 @0", "refresh i1,i2 @2", "continuous i3 @2"]
        )
        assert.deepStrictEqual(all.filter(({ chunk }) => chunk.packageId === refresh.packageId).map(({ chunk }) => chunk.incarnation), [2])
      })
    ), 60_000)

  it.live("refreshes a destination on its schedule (refreshEvery seconds)", () =>
    withPackaging(() =>
      Effect.gen(function*() {
        yield* appendProfileEvents("cookie:m1", added("a", [S]))
        yield* createDestination("d-timed", [S], { refreshEvery: 1 })
        // The creation's refresh, then one about every second: each with every member.
        const chunks = yield* eventually(chunksOf("d-timed"), (cs) => new Set(cs.map(({ chunk }) => chunk.packageId)).size >= 3, "40 seconds")
        for (const { chunk } of chunks) {
          assert.strictEqual(chunk.kind, "refresh")
          assert.match(chunk.packageId, /^refresh-[0-9a-f-]{36}$/)
          assert.deepStrictEqual(chunk.records.map(brief), [`m1 ${S} add`])
        }
      })
    ), 60_000)

  it.live("a scheduled refresh waits while the destination's backlog is over DELIVERY_REFRESH_MAX_BACKLOG", () =>
    withPackaging(() =>
      Effect.gen(function*() {
        // Before stop 28 only a refresh asked for was refused so: a partner that never answered got a
        // refresh package every refreshEvery regardless (60,000 more records a minute on disk).
        yield* appendProfileEvents("cookie:m2", added("a", [S]))
        yield* createDestination("d-stuck", [S], { refreshEvery: 1 })
        // nothing takes DELIVER's chunks: the creation's refresh and the scheduled ones pile up to the bound (2), one past it
        yield* eventually(chunksOf("d-stuck"), (cs) => new Set(cs.map(({ chunk }) => chunk.packageId)).size >= 3, "40 seconds")
        // a refresh about every second before; none now, for a few of them
        yield* Effect.sleep("4 seconds")
        assert.strictEqual(new Set((yield* chunksOf("d-stuck")).map(({ chunk }) => chunk.packageId)).size, 3)
      }), {}, 2), 60_000)

  it.live("a destination's chunks split for new lanes wait until DELIVER holds none of the old split; other destinations' go on meanwhile", () =>
    withPackaging(() =>
      Effect.gen(function*() {
        const { manager } = yield* Nats
        const users = [0, 1, 2, 3, 4, 5].map((i) => `b${i}`)
        const onDeliver = Effect.map(streamMessages(StreamNames.deliver), (messages) =>
          messages.filter((m) => m.subject.startsWith("deliver.d-lanes.")).map((m) => ({ subject: m.subject, chunk: decodeChunk(m.body) })))
        yield* createDestination("d-lanes", [S], { lanes: 1 })
        yield* createDestination("d-other", [T])
        for (const user of users) yield* appendProfileEvents(`cookie:${user}`, added("a", [S]))
        yield* eventually(Effect.map(onDeliver, (ms) => ms.flatMap((m) => m.chunk.records)), (rs) => rs.length === users.length, "40 seconds")

        yield* appendDestinationEvent("d-lanes", "EntityUpdated", { changes: { lanes: 3 } })
        for (const user of users) yield* appendProfileEvents(`cookie:${user}`, removed("a", [S]))
        yield* appendProfileEvents("cookie:o1", added("a", [T]))
        // The other destination's chunk is published behind the waiting ones; the new split is not.
        yield* eventually(recordsOf("d-other"), (rs) => rs.length === 1, "40 seconds")
        yield* Effect.sleep("500 millis")
        const waiting = yield* onDeliver
        assert.deepStrictEqual(waiting.map((m) => [m.subject, m.chunk.lanes]), Array(waiting.length).fill([deliverSubject("d-lanes", 0), 1]), "only the old split")
        assert.isAbove((yield* (yield* PackagesDb).backlog).chunks, 0, "the new split waits in the outbox")

        // The old split delivered (its chunks acknowledged: gone from the work queue): the new one follows, each user in its lane of 3.
        yield* Effect.promise(() => manager.streams.purge(StreamNames.deliver, { filter: destinationLanes("d-lanes") }))
        const after = yield* eventually(onDeliver, (ms) => ms.flatMap((m) => m.chunk.records).length === users.length, "40 seconds")
        for (const { subject, chunk } of after) {
          assert.strictEqual(chunk.lanes, 3)
          assert.strictEqual(subject, deliverSubject("d-lanes", chunk.lane))
          for (const r of chunk.records) assert.deepStrictEqual([r.op, chunk.lane], ["remove", laneOf(`cookie:${r.userId}`, 3)])
        }
      })
    ), 60_000)

  it.live("a destination whose lane on DELIVER is full waits in the outbox while the others' chunks go on; drained, its chunks follow in order, none lost", () =>
    withPackaging(() =>
      Effect.gen(function*() {
        const users = Array.from({ length: 12 }, (_, i) => `f${String(i).padStart(2, "0")}`)
        yield* createDestination("d-full", [S])
        yield* createDestination("d-other", [T])
        for (const user of users) yield* appendProfileEvents(`cookie:${user}`, added("a", [S]))
        // every record packaged: the lane holds 2 chunks, the rest wait in the outbox
        const onLaneAndWaiting = Effect.all([Effect.map(recordsOf("d-full"), (rs) => rs.length), Effect.map(chunksOf("d-full"), (cs) => cs.length), PackagesDb.use((db) => db.backlog)])
        const [onLane, , waiting] = yield* eventually(onLaneAndWaiting, ([n, chunks, b]) => chunks === 2 && n + b.records === users.length, "40 seconds")
        assert.isAbove(waiting.chunks, 0)
        yield* appendProfileEvents("cookie:o1", added("a", [T]))
        yield* eventually(recordsOf("d-other"), (rs) => rs.length === 1, "40 seconds")
        const delivered = [...yield* chunksOf("d-full")]
        assert.deepStrictEqual(delivered.map(({ chunk }) => chunk.seq), [0, 1])
        assert.strictEqual((yield* recordsOf("d-full")).length, onLane)
        assert.deepStrictEqual(yield* PackagesDb.use((db) => db.backlog), waiting, "still waiting, not dropped")

        // its deliverer takes what the lane holds, round by round: the rest follow, in order
        yield* drain("d-full", delivered, users.length, (next) => assert.isAtMost(next.length, 2))
        assert.deepStrictEqual(delivered.map(({ chunk }) => chunk.seq), delivered.map((_, i) => i), "in order, none twice")
        assert.deepStrictEqual(delivered.flatMap(({ chunk }) => chunk.records).map(brief), users.map((u) => `${u} ${S} add`))
        assert.strictEqual((yield* PackagesDb.use((db) => db.backlog)).chunks, 0)
      }), { deliverLaneMaxChunks: 2 }), 60_000)

  it.live("DELIVER full in bytes: chunks wait in the outbox, none dropped, and follow in order as it drains", () =>
    withPackaging(() =>
      Effect.gen(function*() {
        const { manager } = yield* Nats
        const users = Array.from({ length: 30 }, (_, i) => `g${String(i).padStart(2, "0")}`)
        yield* createDestination("d-big", [S])
        yield* createDestination("d-small", [T])
        for (const user of users) yield* appendProfileEvents(`cookie:${user}`, added("a", [S]))
        // every record packaged: DELIVER holds what its bytes allow, the rest waits in the outbox
        const onDeliverAndWaiting = Effect.all([Effect.map(recordsOf("d-big"), (rs) => rs.length), PackagesDb.use((db) => db.backlog)])
        const [, waiting] = yield* eventually(onDeliverAndWaiting, ([n, b]) => n + b.records === users.length, "40 seconds")
        assert.isAbove(waiting.chunks, 0)
        const info = yield* Effect.promise(() => manager.streams.info(StreamNames.deliver))
        assert.isAtMost(info.state.bytes, 2_500, "the publisher keeps the bound, JetStream's own (twice it) is a backstop")
        yield* appendProfileEvents("cookie:o2", added("a", [T]))

        // drained round by round (its deliverer taking what DELIVER holds): everything follows, in order, once
        const delivered = [...yield* chunksOf("d-big")]
        yield* drain("d-big", delivered, users.length)
        assert.deepStrictEqual(delivered.map(({ chunk }) => chunk.seq), delivered.map((_, i) => i), "in order, none twice")
        assert.deepStrictEqual(delivered.flatMap(({ chunk }) => chunk.records).map(brief), users.map((u) => `${u} ${S} add`))
        // the last of them taken too: the other destination's chunk, waiting while DELIVER was full, follows
        yield* Effect.promise(() => manager.streams.purge(StreamNames.deliver, { filter: deliverSubject("d-big") }))
        yield* eventually(recordsOf("d-small"), (rs) => rs.length === 1, "40 seconds")
        assert.strictEqual((yield* PackagesDb.use((db) => db.backlog)).chunks, 0)
      }), { deliverMaxBytes: 2_500 }), 90_000)

  it.live("an outbox written before chunks were stamped keeps its rows: each with its destination, its lane count unknown", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("packages-unstamped")
      const path = join(dir, "delivery.db")
      const old = new DatabaseSync(path)
      old.exec(`CREATE TABLE delivery_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT, subject TEXT NOT NULL, msg_id TEXT NOT NULL, chunk TEXT NOT NULL, records INTEGER NOT NULL)`)
      const chunk = { destination: "d-old", lane: 1, packageId: "continuous", kind: "continuous", seq: 0, records: [] }
      old.prepare("INSERT INTO delivery_outbox (subject, msg_id, chunk, records) VALUES (?, ?, ?, 0)").run(deliverSubject("d-old", 1), chunkId(chunk), JSON.stringify(chunk))
      old.close()
      return yield* Effect.gen(function*() {
        const db = yield* PackagesDb
        assert.deepStrictEqual(yield* db.destinations, [{ destination: "d-old", nextLanes: undefined, publishedLanes: undefined, deleted: false, incarnation: undefined }])
        const rows = yield* db.pending("d-old", 10)
        assert.deepStrictEqual(rows.map((row) => [row.subject, row.msgId, row.lanes]), [[deliverSubject("d-old", 1), chunkId(chunk), undefined]])
        yield* db.published("d-old", rows[0]!.id, 2)
        assert.deepStrictEqual(yield* db.destinations, [])
      }).pipe(Effect.provide(PackagesDb.layer({ path, maxRecords: 2 })))
    }).pipe(Effect.scoped))

  it.live("events applied twice package nothing twice; a publisher starting after a crash between publish and delete does not publish those chunks again, even past the duplicate window", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("packages-tail")
      const layers = Layer.mergeAll(PackagesDb.layer({ path: join(dir, "delivery.db"), maxRecords: 2 }), deliveryBacklog).pipe(
        Layer.provideMerge(Layer.mergeAll(eventStore({ path: join(dir, "events.db") }), layerTestNats({ duplicateWindow: "200 millis" })))
      )
      return yield* Effect.gen(function*() {
        const db = yield* PackagesDb
        const { jetstream } = yield* Nats
        yield* createDestination("d-one", [S])
        for (let i = 0; i < 5; i++) yield* appendProfileEvents(`cookie:t${i}`, added("a", [S]))
        const envelopes = toEnvelopes(yield* (yield* EventStore).readAll())
        yield* db.store.apply(packagesProjectionName, envelopes, envelopes.at(-1)!.position)
        // A paused former lease holder applying the same events again packages nothing twice.
        yield* db.store.apply(packagesProjectionName, envelopes, envelopes.at(-1)!.position)
        const rows = yield* db.pending("d-one", 10)
        assert.strictEqual(rows.length, 3)
        // The crash: the first two chunks were stored by JetStream, their rows not yet deleted.
        for (const row of rows.slice(0, 2)) yield* Effect.promise(() => jetstream.publish(row.subject, row.chunk, { msgID: row.msgId }))
        yield* Effect.sleep("1 second") // past the duplicate window: JetStream would take them again
        yield* Effect.forkScoped(publishOutbox())
        yield* eventually(db.backlog, (b) => b.chunks === 0, "40 seconds")
        yield* Effect.sleep("300 millis")
        assert.deepStrictEqual((yield* recordsOf("d-one")).map(brief), [0, 1, 2, 3, 4].map((i) => `t${i} ${S} add`))
      }).pipe(Effect.scoped, Effect.provide(layers))
    }).pipe(Effect.scoped), 60_000)
})
