import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Layer, Schedule, Schema } from "effect"
import { Chunk, chunkId, type DeliveryRecord } from "../../../domain/delivery/Chunk.ts"
import { deliverSubject, StreamNames } from "../../../domain/subjects.ts"
import { layer as packages } from "../../../infra/delivery/packages.ts"
import type { EventStore } from "../../../domain/EventStore.ts"
import { layerSqlite as eventStore } from "../../../infra/eventstore/sqlite.ts"
import type { Nats } from "../../../infra/nats/Nats.ts"
import { DeliveryPackages } from "../../../projections/delivery/packages.ts"
import { createDestination } from "../../fixtures/destinationEvents.ts"
import { streamMessages } from "../../fixtures/jetstreamContents.ts"
import { layerTestNats, TestNatsServer } from "../../fixtures/nats.ts"
import { added, appendProfileEvents, expired, removed } from "../../fixtures/segmentEvents.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const packagesProcess = fileURLToPath(new URL("../../fixtures/packagesProcess.ts", import.meta.url))

const S = "9007199254740993" // above 2^53: ids stay strings
const T = "42"
const U = "7"

const decodeChunk = Schema.decodeUnknownSync(Chunk)

/** Every chunk on DELIVER for a destination's lane 0, in stream order, with its Nats-Msg-Id. */
const chunksOf = (destination: string) =>
  Effect.map(streamMessages(StreamNames.deliver), (messages) =>
    messages.filter((m) => m.subject === deliverSubject(destination, 0)).map((m) => ({ chunk: decodeChunk(m.body), msgId: m.headers["Nats-Msg-Id"], seq: m.seq })))

const recordsOf = (destination: string) =>
  Effect.map(chunksOf(destination), (chunks) => chunks.flatMap(({ chunk }) => chunk.records))

/** Polls until `check` holds (generous: the machine is shared); fails with the last value otherwise. */
const eventually = <A, E, R>(effect: Effect.Effect<A, E, R>, check: (a: A) => boolean, seconds = 40) =>
  effect.pipe(
    Effect.filterOrFail(check, (a) => new Error(`condition not met; last value: ${JSON.stringify(a).slice(0, 2_000)}`)),
    Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo({ times: seconds * 10 })))
  )

const brief = (r: DeliveryRecord) => `${r.userId} ${r.segmentId} ${r.op}`

/** A temp dir, an event store file, a fresh nats-server with the streams, and packaging (chunks of 3 records) in this process. */
const withPackaging = <A, E>(test: (dir: string) => Effect.Effect<A, E, EventStore | Nats | DeliveryPackages | TestNatsServer>) =>
  Effect.gen(function*() {
    const dir = yield* tempDir("packages")
    const store = eventStore({ path: join(dir, "events.db") })
    const base = Layer.mergeAll(store, layerTestNats())
    return yield* test(dir).pipe(
      Effect.provide(packages({ path: join(dir, "delivery.db"), chunkRecords: 3 }).pipe(Layer.provideMerge(base)))
    )
  }).pipe(Effect.scoped)

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

        const one = yield* eventually(recordsOf("d-one"), (records) => records.length >= 6)
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
        yield* eventually(recordsOf("d-one"), (records) => records.length === 9)
        const refresh = yield* DeliveryPackages.use((p) => p.refresh("d-one"))
        assert.match(refresh.packageId, /^refresh-[0-9a-f-]{36}$/)
        assert.strictEqual(refresh.records, 7)
        yield* appendProfileEvents("cookie:m1", removed("a", [S]), removed("b", [S])) // after the refresh

        const chunks = yield* eventually(chunksOf("d-one"), (cs) => cs.some(({ chunk }) => chunk.records.some((r) => r.userId === "m1" && r.op === "remove")))
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
        const late = yield* eventually(chunksOf("d-late"), (cs) => cs.length > 0)
        assert.strictEqual(late[0]!.chunk.kind, "refresh")
        assert.deepStrictEqual(late.flatMap(({ chunk }) => chunk.records).map(brief), [`m2 ${T} add`])

        const unknown = yield* Effect.flip(DeliveryPackages.use((p) => p.refresh("nope")))
        assert.strictEqual(unknown._tag, "EntityNotFound")
      })
    ), 60_000)

  it.live("every record once on DELIVER across a SIGKILL of the packaging process", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("packages-crash")
      const events = join(dir, "events.db")
      return yield* crashTest(dir, events).pipe(Effect.provide(Layer.mergeAll(eventStore({ path: events }), layerTestNats())))
    }).pipe(Effect.scoped), 90_000)
})

const crashTest = (dir: string, events: string) =>
    Effect.gen(function*() {
      const { url, platform } = yield* TestNatsServer
      const start = (name: string) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            const child = spawn(process.execPath, ["--no-warnings", packagesProcess, url, events, join(dir, "delivery.db"), "2"], {
              stdio: ["ignore", "pipe", "pipe"],
              env: { ...process.env, NATS_USER: platform.user, NATS_PASSWORD: platform.password }
            })
            const keep = (chunk: Buffer) => writeFileSync(join(dir, `${name}.log`), chunk, { flag: "a" })
            child.stdout.on("data", keep)
            child.stderr.on("data", keep)
            return child
          }),
          (child) => Effect.sync(() => void child.kill("SIGKILL"))
        )
      const profiles = (from: number, to: number) =>
        Effect.forEach(Array.from({ length: to - from }, (_, i) => from + i), (i) => appendProfileEvents(`cookie:u${i}`, added("a", [S])), { discard: true })

      yield* createDestination("d-one", [S])
      yield* profiles(0, 150)
      const first = yield* start("first")
      yield* eventually(chunksOf("d-one"), (cs) => cs.length > 0)
      first.kill("SIGKILL")
      const atKill = (yield* recordsOf("d-one")).length
      yield* profiles(150, 300)
      yield* start("second") // takes the lease once the killed holder's expires
      const records = yield* eventually(recordsOf("d-one"), (rs) => rs.length >= 300, 50)
      yield* Effect.sleep("1 second") // a duplicate would land now, if any
      const all = (yield* recordsOf("d-one")).map(brief)
      assert.strictEqual(all.length, 300, `every record exactly once (${atKill} were on DELIVER at the kill)`)
      assert.deepStrictEqual(all, Array.from({ length: 300 }, (_, i) => `u${i} ${S} add`), "in commit order")
      assert.isAtLeast(records.length, 300)
    })
