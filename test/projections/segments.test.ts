import { assert, describe, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { DatabaseSync } from "node:sqlite"
import { Clock, Effect, Layer, Option, Schedule } from "effect"
import { EventStore, type StreamAppend } from "../../domain/EventStore.ts"
import { streamName } from "../../domain/envelope.ts"
import { layerSqlite as eventStore } from "../../infra/eventstore/sqlite.ts"
import { segmentsProjection } from "../../infra/readmodel/segments.ts"
import { layerSqlite as segmentQueries } from "../../infra/readmodel/segmentsQueries.ts"
import { layerSqlite as readModel } from "../../infra/readmodel/sqlite.ts"
import { SegmentReadModel } from "../../projections/ingest/segments.ts"
import { layer as runner, Projections } from "../../projections/ProjectionRunner.ts"
import { ProjectionStore } from "../../projections/ProjectionStore.ts"
import { added, appendProfileEvents, expired, profileEventData, profileType, removed, settableClock } from "../fixtures/segmentEvents.ts"
import { appendEntityEvents } from "../fixtures/entityEvents.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const projectionProcess = fileURLToPath(new URL("../fixtures/segmentsProjectionProcess.ts", import.meta.url))

const S = "9007199254740993" // above 2^53: ids stay strings
const T = "42"

/** The read side on SQLite files in `dir`: the event store (recording at `clock`'s time), the read model with the segments projection, its queries, the runner. */
const readSide = (dir: string, clock: Clock.Clock) => {
  const path = join(dir, "readmodel.db")
  const model = readModel({ path, projections: [segmentsProjection()] })
  return runner.pipe(
    Layer.provideMerge(Layer.mergeAll(model, segmentQueries({ path }).pipe(Layer.provide(model)))),
    Layer.provideMerge(eventStore({ path: join(dir, "events.db") }).pipe(Layer.provide(Layer.succeed(Clock.Clock, clock))))
  )
}

/** Waits (bounded, generously) until the segments projection has applied everything in the store. */
const caughtUp = Effect.gen(function*() {
  const head = yield* (yield* EventStore).headPosition
  if ((yield* (yield* ProjectionStore).checkpoint("segments")) !== head) return yield* Effect.fail("behind" as const)
}).pipe(Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ times: 1_500 }))))

const segment = (id: string, from = "2026-01-01", to = "2026-12-31") =>
  SegmentReadModel.use((model) => model.get(id, { from, to })).pipe(Effect.map(Option.getOrUndefined))

/**
 * Profile p1 is given S by partners a and b (members 1), a renews it (no add), a removes it (still a
 * member through b), b's expires (0). Profile p2 joins S through a and is removed. Profile p3 joins S
 * and T in one event. Noise: another entity type, a remove of a membership that is not there.
 */
const mixedSequence = (clock: { readonly set: (iso: string) => void }) =>
  Effect.gen(function*() {
    clock.set("2026-03-01T08:00:00Z")
    yield* appendProfileEvents("cookie:p1", added("a", [S]), added("b", [S]))
    yield* appendProfileEvents("cookie:p1", added("a", [S])) // a renewal
    yield* appendProfileEvents("cookie:p2", added("a", [S]))
    yield* appendProfileEvents("cookie:p3", added("b", [S, T]))
    yield* appendEntityEvents({ type: "advertiser", id: "1" }, 2)
    clock.set("2026-03-02T23:59:59.999Z")
    yield* appendProfileEvents("cookie:p1", removed("a", [S])) // b still holds it
    yield* appendProfileEvents("cookie:p2", removed("a", [S]), removed("c", [S])) // c never held it
    yield* appendProfileEvents("cookie:p3", added("b", [S])) // a renewal on another day
    clock.set("2026-03-03T00:00:00Z")
    yield* appendProfileEvents("cookie:p1", expired("b", [S]))
  })

const expectedS = {
  segmentId: S,
  members: 1,
  partners: [{ partner: "b", members: 1 }],
  days: [
    { day: "2026-03-01", added: 3, removed: 0, expired: 0 },
    { day: "2026-03-02", added: 0, removed: 1, expired: 0 },
    { day: "2026-03-03", added: 0, removed: 0, expired: 1 }
  ]
}

describe("segment read model (the segments projection)", () => {
  it.live("counts members, not memberships: a second partner, a renewal and one of two partners' removes change no count", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("segments")
      const clock = settableClock(yield* Clock.Clock, Date.parse("2026-03-01T08:00:00Z"))
      yield* Effect.gen(function*() {
        clock.set("2026-03-01T08:00:00Z")
        yield* appendProfileEvents("cookie:p1", added("a", [S]), added("b", [S]))
        yield* caughtUp
        // two partners, one profile: one member, one add
        assert.deepStrictEqual(yield* segment(S), {
          segmentId: S, members: 1, partners: [{ partner: "a", members: 1 }, { partner: "b", members: 1 }],
          days: [{ day: "2026-03-01", added: 1, removed: 0, expired: 0 }]
        })

        yield* appendProfileEvents("cookie:p1", removed("a", [S]))
        yield* caughtUp
        assert.deepStrictEqual(yield* segment(S), {
          segmentId: S, members: 1, partners: [{ partner: "b", members: 1 }],
          days: [{ day: "2026-03-01", added: 1, removed: 0, expired: 0 }]
        })

        clock.set("2026-03-04T10:00:00Z")
        yield* appendProfileEvents("cookie:p1", expired("b", [S]))
        yield* caughtUp
        assert.deepStrictEqual(yield* segment(S), {
          segmentId: S, members: 0, partners: [],
          days: [{ day: "2026-03-01", added: 1, removed: 0, expired: 0 }, { day: "2026-03-04", added: 0, removed: 0, expired: 1 }]
        })

        // a has it again (a new membership, not a renewal): a member again, an add on that day
        yield* appendProfileEvents("cookie:p1", added("a", [S]))
        yield* caughtUp
        assert.deepStrictEqual((yield* segment(S))?.days.at(-1), { day: "2026-03-04", added: 1, removed: 0, expired: 1 })
        assert.strictEqual((yield* segment(S))?.members, 1)
      }).pipe(Effect.provide(readSide(dir, clock.clock)))
    }))

  it.live("buckets changes by the UTC day of recordedAt, reads a range of days, and answers none for a segment that never had a member", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("segments")
      const clock = settableClock(yield* Clock.Clock, Date.parse("2026-03-01T08:00:00Z"))
      yield* Effect.gen(function*() {
        yield* mixedSequence(clock)
        yield* caughtUp
        assert.deepStrictEqual(yield* segment(S), expectedS)
        assert.deepStrictEqual(yield* segment(T), {
          segmentId: T, members: 1, partners: [{ partner: "b", members: 1 }], days: [{ day: "2026-03-01", added: 1, removed: 0, expired: 0 }]
        })
        // one day, and a range with no changes
        assert.deepStrictEqual((yield* segment(S, "2026-03-02", "2026-03-02"))?.days, [expectedS.days[1]])
        assert.deepStrictEqual((yield* segment(S, "2026-04-01", "2026-04-30"))?.days, [])
        assert.strictEqual(yield* segment("7"), undefined)

        // a partner's own view: every segment it fed, its own members now (0 once all ended), in numeric id order
        const model = yield* SegmentReadModel
        assert.deepStrictEqual(yield* model.ofPartner("b", { limit: 10 }), { items: [{ segmentId: T, members: 1 }, { segmentId: S, members: 1 }], more: false })
        assert.deepStrictEqual(yield* model.ofPartner("a", { limit: 10 }), { items: [{ segmentId: S, members: 0 }], more: false })
        assert.deepStrictEqual(yield* model.ofPartner("b", { limit: 1 }), { items: [{ segmentId: T, members: 1 }], more: true })
        assert.deepStrictEqual(yield* model.ofPartner("b", { limit: 1, after: T }), { items: [{ segmentId: S, members: 1 }], more: false })
        assert.deepStrictEqual(yield* model.ofPartner("c", { limit: 10 }), { items: [], more: false })
      }).pipe(Effect.provide(readSide(dir, clock.clock)))
    }))

  it.live("resumes from an older checkpoint, or from none, without counting anything twice; a rebuild gives the same counts", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("segments")
      const clock = settableClock(yield* Clock.Clock, Date.parse("2026-03-01T08:00:00Z"))
      let middle = 0
      yield* Effect.gen(function*() {
        yield* mixedSequence(clock)
        yield* caughtUp
        middle = Math.floor(((yield* (yield* EventStore).headPosition) ?? 0) / 2)
      }).pipe(Effect.provide(readSide(dir, clock.clock)))

      // The checkpoint set back, as a read model restored from an older copy (or reset to an older layout) would be.
      for (const position of [middle, null]) {
        const db = new DatabaseSync(join(dir, "readmodel.db"))
        if (position === null) db.prepare("DELETE FROM checkpoints WHERE name = 'segments'").run()
        else db.prepare("UPDATE checkpoints SET position = ? WHERE name = 'segments'").run(position)
        db.close()
        yield* Effect.gen(function*() {
          yield* caughtUp
          assert.deepStrictEqual(yield* segment(S), expectedS)
        }).pipe(Effect.provide(readSide(dir, clock.clock)))
      }

      yield* Effect.gen(function*() {
        yield* (yield* Projections).rebuild("segments")
        yield* caughtUp
        assert.deepStrictEqual(yield* segment(S), expectedS)
      }).pipe(Effect.provide(readSide(dir, clock.clock)))
    }))

  it.live("skips a profile event whose data does not decode and goes on with the rest", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("segments")
      const clock = settableClock(yield* Clock.Clock, Date.parse("2026-03-01T08:00:00Z"))
      yield* Effect.gen(function*() {
        const broken = { ...profileEventData("cookie:p9", added("a", [S]), Date.now()), data: { memberships: [{ partner: "a", segment: S }] } }
        yield* (yield* EventStore).appendToStream(streamName(profileType, "cookie:p9"), [broken], "no_stream")
        yield* appendProfileEvents("cookie:p9", added("a", [S]))
        yield* caughtUp
        assert.strictEqual((yield* segment(S))?.members, 1)
        assert.deepStrictEqual((yield* segment(S))?.days, [{ day: "2026-03-01", added: 1, removed: 0, expired: 0 }])
      }).pipe(Effect.provide(readSide(dir, clock.clock)))
    }))

  it.live("counts every change exactly once after the projection's process is SIGKILLed mid-way and restarted", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("segments")
      const clock = settableClock(yield* Clock.Clock, Date.parse("2026-03-01T08:00:00Z"))
      const profiles = 10_000
      let head = 0
      // Every profile joins S and T through partner a; then every other one leaves T; in multi-stream appends of 1,000 profiles.
      yield* Effect.gen(function*() {
        const store = yield* EventStore
        const appendAll = (revision: number, event: (i: number) => ReturnType<typeof added> | undefined) =>
          Effect.gen(function*() {
            for (let from = 0; from < profiles; from += 1_000) {
              const appends: Array<StreamAppend> = []
              for (let i = from; i < from + 1_000; i++) {
                const e = event(i)
                if (e !== undefined) {
                  appends.push({ stream: streamName(profileType, `cookie:u${i}`), events: [profileEventData(`cookie:u${i}`, e, Date.now())], expectedRevision: revision === 0 ? "no_stream" : revision - 1 })
                }
              }
              yield* store.appendToStreams(appends)
            }
          })
        yield* appendAll(0, () => added("a", [S, T]))
        clock.set("2026-03-02T08:00:00Z")
        yield* appendAll(1, (i) => (i % 2 === 0 ? removed("a", [T]) : undefined))
        head = (yield* store.headPosition) ?? 0
      }).pipe(Effect.provide(eventStore({ path: join(dir, "events.db") }).pipe(Layer.provide(Layer.succeed(Clock.Clock, clock.clock)))))

      const checkpoint = Effect.sync(() => {
        if (!existsSync(join(dir, "readmodel.db"))) return undefined
        const db = new DatabaseSync(join(dir, "readmodel.db"), { readOnly: true, timeout: 5_000 })
        try {
          return (db.prepare("SELECT position FROM checkpoints WHERE name = 'segments'").get() as { position: number } | undefined)?.position
        } catch {
          return undefined // the tables are being created
        } finally {
          db.close()
        }
      })
      const killedAt = yield* Effect.scoped(Effect.gen(function*() {
        const child = yield* Effect.acquireRelease(
          Effect.sync(() => spawn(process.execPath, ["--no-warnings", projectionProcess, join(dir, "events.db"), join(dir, "readmodel.db")], { stdio: ["ignore", "ignore", "inherit"] })),
          (child) => killAndWait(child)
        )
        // killed once it has committed some pages, however long a loaded machine takes to start it
        yield* checkpoint.pipe(
          Effect.flatMap((position) => position !== undefined && position > 0 ? Effect.succeed(position) : Effect.fail("not yet" as const)),
          Effect.retry(Schedule.spaced("5 millis").pipe(Schedule.upTo({ times: 12_000 })))
        )
        yield* killAndWait(child)
        return (yield* checkpoint) ?? 0
      }))
      assert.isBelow(killedAt, head, "killed before it had caught up")

      yield* Effect.gen(function*() {
        yield* caughtUp
        assert.deepStrictEqual(yield* segment(S), {
          segmentId: S, members: profiles, partners: [{ partner: "a", members: profiles }], days: [{ day: "2026-03-01", added: profiles, removed: 0, expired: 0 }]
        })
        assert.deepStrictEqual(yield* segment(T), {
          segmentId: T, members: profiles / 2, partners: [{ partner: "a", members: profiles / 2 }],
          days: [{ day: "2026-03-01", added: profiles, removed: 0, expired: 0 }, { day: "2026-03-02", added: 0, removed: profiles / 2, expired: 0 }]
        })
      }).pipe(Effect.provide(readSide(dir, clock.clock)))
    }), 60_000)
})

/** SIGKILLs a child process and waits for it to be gone. */
const killAndWait = (child: ChildProcess) =>
  Effect.callback<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
    child.kill("SIGKILL")
  })
