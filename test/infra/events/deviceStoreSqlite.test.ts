/**
 * devices.db (infra/events/deviceStoreSqlite.ts), a real SQLite file: states round-trip, one commit
 * holds states, outbox and consumed sequences, the reminder finds the idle open sessions through its
 * partial index, outbox ids never go back, the dedupe table stays within 64 bytes a device, and writes
 * sent at once through the writer thread are each answered.
 */
import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Context, Effect, Layer } from "effect"
import { add, empty } from "../../../domain/events/dedupe.ts"
import { DeviceStore } from "../../../domain/events/DeviceStore.ts"
import { emptySessions, step } from "../../../domain/events/sessions.ts"
import { deviceKey } from "../../../actors/events/deviceKey.ts"
import { appsWithWorkSql, layerSqlite, schema } from "../../../infra/events/deviceStoreSqlite.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const withStore = <A, E>(f: (store: DeviceStore["Service"]) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const dir = yield* tempDir("devices-db")
    return yield* Effect.flatMap(DeviceStore, f).pipe(Effect.provide(layerSqlite({ path: join(dir, "devices.db") })))
  })

const opened = (touched: number) =>
  step(emptySessions, { type: "open", time: 1_000, dims: {} }, touched, { inactivityMs: 60_000 }).state

const nothing = { dedupe: new Map(), sessions: new Map(), outbox: [], consumed: [], acknowledged: [] }

describe("devices.db", () => {
  it("keys a device as every earlier version did: 16 bytes of SHA-256 over app, NUL, device id", () => {
    // devices.db's rows are found by these keys: a key computed differently would start every device anew
    assert.strictEqual(deviceKey("31337", "dev-7"), "45c7f9214e625b351c2b1cd2d673c01b")
    assert.strictEqual(deviceKey("1", "é😀"), "937e50bed4366e16824657256f7e34fb")
  })

  it.effect("commits states, outbox rows and consumed sequences together, and reads them back", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const a = deviceKey("1", "a")
        const b = deviceKey("1", "b")
        const c = deviceKey("1", "c")
        const dedupe = add(add(empty, 0).state, 5).state
        yield* store.commit({
          ...nothing,
          app: "1",
          dedupe: new Map([[a, dedupe]]),
          sessions: new Map([
            [a, { deviceId: "a", state: opened(1_000) }],
            [b, { deviceId: "b", state: opened(5_000) }],
            [c, { deviceId: "c", state: emptySessions }]
          ]),
          outbox: [{ kind: "clean", body: "{\"n\":1}" }, { kind: "session", body: "{\"n\":2}" }],
          consumed: [5, 6]
        })
        const loaded = yield* store.load([a, c, deviceKey("1", "never")])
        assert.deepStrictEqual(loaded.get(a), { dedupe, sessions: { deviceId: "a", state: opened(1_000) } })
        assert.deepStrictEqual(loaded.get(c), { sessions: { deviceId: "c", state: emptySessions } })
        assert.strictEqual(loaded.size, 2)

        // the reminder's query: open sessions not moved since 2,000 — a only; none of another app
        assert.deepStrictEqual(yield* store.idle("1", 2_000, 100), [a])
        assert.deepStrictEqual(yield* store.idle("2", 2_000, 100), [])
        assert.deepStrictEqual(yield* store.appsWithWork, ["1"])
        // an app with outbox rows to publish and no open session has work too (its pipeline publishes them)
        yield* store.commit({ ...nothing, app: "2", outbox: [{ kind: "clean", body: "{\"n\":3}" }] })
        assert.deepStrictEqual([...yield* store.appsWithWork].sort(), ["1", "2"])

        assert.deepStrictEqual(yield* store.consumed("1", [4, 5, 6]), new Set([5, 6]))
        yield* store.commit({ ...nothing, app: "1", acknowledged: [5] })
        assert.deepStrictEqual(yield* store.consumed("1", [4, 5, 6]), new Set([6]))

        const rows = yield* store.outbox("1", 0, 10, Infinity)
        assert.deepStrictEqual(rows.map((r) => [r.kind, r.body]), [["clean", "{\"n\":1}"], ["session", "{\"n\":2}"]])
        // a page ends with the row that reaches its characters (7 each here), or at its count
        assert.deepStrictEqual((yield* store.outbox("1", 0, 10, 7)).map((r) => r.id), [rows[0]!.id])
        assert.deepStrictEqual((yield* store.outbox("1", 0, 10, 8)).map((r) => r.id), [rows[0]!.id, rows[1]!.id])
        assert.deepStrictEqual((yield* store.outbox("1", 0, 1, Infinity)).map((r) => r.id), [rows[0]!.id])
        // rows published are deleted by the next commit, with what it writes
        assert.deepStrictEqual(yield* store.fences("1"), {})
        yield* store.commit({ ...nothing, app: "1", consumed: [7], published: { ids: [rows[0]!.id], fences: { clean: 40 } } })
        assert.deepStrictEqual((yield* store.outbox("1", 0, 10, Infinity)).map((r) => r.id), [rows[1]!.id])
        yield* store.published("1", { ids: [rows[1]!.id], fences: { session: 12, clean: 30 } })
        assert.deepStrictEqual(yield* store.outbox("1", 0, 10, Infinity), [])
        // a fence only rises, and is the app's own
        assert.deepStrictEqual(yield* store.fences("1"), { clean: 40, session: 12 })
        assert.deepStrictEqual(yield* store.fences("2"), {})
        // ids never go back once every row was deleted: a tail read from a stream stays below new rows
        yield* store.commit({ ...nothing, app: "1", outbox: [{ kind: "clean", body: "{}" }] })
        assert.isAbove((yield* store.outbox("1", 0, 10, Infinity))[0]!.id, rows[1]!.id)
      })))

  it.effect("a pipeline's claim fences off its predecessor's commits, and comes after every write this process sent before it", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const a = deviceKey("1", "a")
        const first = yield* store.claim("1")
        assert.strictEqual(yield* store.claim("2"), first, "each app has its own claims")
        yield* store.commit({ ...nothing, app: "1", epoch: first, consumed: [1], dedupe: new Map([[a, add(empty, 0).state]]) })
        // a commit still queued when the successor claims: it lands first, and the successor reads it
        const [, second] = yield* Effect.all([
          store.commit({ ...nothing, app: "1", epoch: first, consumed: [2] }),
          store.claim("1")
        ], { concurrency: "unbounded" })
        assert.strictEqual(second, first + 1)
        assert.deepStrictEqual([...yield* store.consumed("1", [1, 2, 3])], [1, 2])
        // the predecessor's next commit is refused, and leaves nothing
        const refused = yield* Effect.flip(store.commit({ ...nothing, app: "1", epoch: first, consumed: [3], dedupe: new Map([[a, add(add(empty, 0).state, 1).state]]) }))
        assert.match(String(refused.cause), /claimed again \(epoch 2, this one's 1\)/)
        assert.deepStrictEqual([...yield* store.consumed("1", [3])], [])
        assert.deepStrictEqual((yield* store.load([a])).get(a)?.dedupe, add(empty, 0).state)
        // the successor's goes in
        yield* store.commit({ ...nothing, app: "1", epoch: second, consumed: [3] })
        assert.deepStrictEqual([...yield* store.consumed("1", [3])], [3])
      })))

  it.effect("a claim in another process on the same file fences this one's commits", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir("devices-db"), "devices.db")
      const open = Effect.map(Layer.build(Layer.fresh(layerSqlite({ path }))), (context) => Context.get(context, DeviceStore))
      const here = yield* open
      const there = yield* open
      const mine = yield* here.claim("1")
      assert.strictEqual(yield* there.claim("1"), mine + 1)
      const refused = yield* Effect.flip(here.commit({ ...nothing, app: "1", epoch: mine, consumed: [9] }))
      assert.match(String(refused.cause), /claimed again/)
      assert.deepStrictEqual([...yield* there.consumed("1", [9])], [])
    }))

  it.effect("finds the apps with work by a seek an app, not a pass over every open session", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const sessions = (app: string, devices: number) =>
          new Map(Array.from({ length: devices }, (_, i) => [deviceKey(app, `d${i}`), { deviceId: `d${i}`, state: opened(1_000) }]))
        yield* store.commit({ ...nothing, app: "5", sessions: sessions("5", 50) })
        yield* store.commit({ ...nothing, app: "3", sessions: sessions("3", 50) })
        yield* store.commit({ ...nothing, app: "8", outbox: [{ kind: "clean", body: "{}" }] })
        assert.deepStrictEqual([...yield* store.appsWithWork].sort(), ["3", "5", "8"])
        // it ran every second on the event loop: a DISTINCT over 6.7 million open sessions took 0.6 s
        const db = new DatabaseSync(":memory:")
        db.exec(schema)
        const plan = (db.prepare(`EXPLAIN QUERY PLAN ${appsWithWorkSql}`).all() as Array<{ detail: string }>).map((row) => row.detail)
        db.close()
        assert.isFalse(plan.some((step) => /^SCAN (sessions|outbox)/.test(step)), plan.join("; "))
        assert.isTrue(plan.some((step) => step.startsWith("SEARCH sessions USING COVERING INDEX sessions_idle (app>?)")), plan.join("; "))
        // and the footprint, a pass over the dedupe table, comes from the writer thread
        assert.deepStrictEqual((yield* store.footprint).devices, 0)
      })))

  it.effect("keeps the dedupe state of typical devices within 64 bytes each on disk", () =>
    withStore((store) =>
      Effect.gen(function*() {
        const devices = 20_000
        for (let chunk = 0; chunk < devices; chunk += 2_000) {
          const dedupe = new Map<string, ReturnType<typeof add>["state"]>()
          for (let i = chunk; i < chunk + 2_000; i++) {
            // 20 events, in order; every tenth device has one that never came
            let state = empty
            for (let seq = 0; seq < 20; seq++) if (!(i % 10 === 0 && seq === 7)) state = add(state, seq).state
            dedupe.set(deviceKey("9", `device-${i}`), state)
          }
          yield* store.commit({ ...nothing, app: "9", dedupe })
        }
        const footprint = yield* store.footprint
        assert.strictEqual(footprint.devices, devices)
        const perDevice = footprint.bytes / footprint.devices
        assert.isBelow(perDevice, 64, `${perDevice.toFixed(1)} bytes a device`)
      })))

  it.effect("answers writes sent at once (a commit beside the publisher's settle), each in turn", () =>
    withStore((store) =>
      Effect.gen(function*() {
        yield* store.commit({ ...nothing, app: "1", outbox: Array.from({ length: 4 }, (_, n) => ({ kind: "clean" as const, body: `{"n":${n}}` })) })
        const rows = yield* store.outbox("1", 0, 10, Infinity)
        // before, the writer thread's client kept one waiter: the second request's answer resumed nobody, and the first hung
        yield* Effect.all([
          store.commit({ ...nothing, app: "1", consumed: [1, 2] }),
          store.published("1", { ids: [rows[0]!.id, rows[1]!.id], fences: { clean: 2 } }),
          store.commit({ ...nothing, app: "1", consumed: [3] }),
          store.published("1", { ids: [rows[2]!.id], fences: { clean: 3 } })
        ], { concurrency: "unbounded" }).pipe(Effect.timeout("10 seconds"))
        assert.deepStrictEqual(yield* store.consumed("1", [1, 2, 3]), new Set([1, 2, 3]))
        assert.deepStrictEqual((yield* store.outbox("1", 0, 10, Infinity)).map((r) => r.id), [rows[3]!.id])
        assert.deepStrictEqual(yield* store.fences("1"), { clean: 3 })
      })))
})
