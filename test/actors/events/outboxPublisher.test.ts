/**
 * The device outbox publisher restarting after a crash (real nats-server, real devices.db): rows the
 * previous run published are not published again, and a row whose publish failed while a later row's
 * succeeded is not taken for published. Before the fence, a restart took every row at or below the
 * subject's last outbox id for published and deleted it: that row was lost.
 */
import { assert, layer } from "@effect/vitest"
import { join } from "node:path"
import { Effect, Exit, Layer, Queue } from "effect"
import { publishOutbox } from "../../../actors/events/outboxPublisher.ts"
import { checkedHeader } from "../../../domain/checked.ts"
import { cleanBatchMark } from "../../../domain/events/CleanEvent.ts"
import { CleanPublisher } from "../../../domain/events/CleanOutbox.ts"
import { DeviceStore } from "../../../domain/events/DeviceStore.ts"
import { cleanEventsSubject, StreamNames } from "../../../domain/subjects.ts"
import { layerJetStream } from "../../../infra/events/cleanPublisher.ts"
import { layerSqlite } from "../../../infra/events/deviceStoreSqlite.ts"
import { Nats, tryNats } from "../../../infra/nats/Nats.ts"
import { layerTestNats } from "../../fixtures/nats.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const APP = "7"
const nothing = { dedupe: new Map(), sessions: new Map(), consumed: [], acknowledged: [] }

const devices = Layer.unwrap(Effect.map(tempDir("outbox-publisher"), (dir) => layerSqlite({ path: join(dir, "devices.db") })))
const layers = Layer.mergeAll(devices, layerJetStream.pipe(Layer.provideMerge(layerTestNats())))

/** The outbox ids the app's clean subject holds, in stream order; each message marked as the pipeline's CleanBatch. */
const onSubject = Effect.gen(function*() {
  const { manager } = yield* Nats
  const ids: Array<number> = []
  const info = yield* tryNats("info", () => manager.streams.info(StreamNames.eventsClean))
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const msg = yield* tryNats("get", () => manager.streams.getMessage(StreamNames.eventsClean, { seq }))
    if (msg?.subject !== cleanEventsSubject(APP)) continue
    ids.push(Number(msg.header.get("Tributary-Outbox-Id")))
    assert.strictEqual(msg.header.get(checkedHeader), cleanBatchMark)
  }
  return ids
})

layer(layers, { excludeTestServices: true, timeout: 90_000 })("the device outbox publisher after a crash", (it) => {
  it.effect("publishes a row that failed before a later one succeeded, and nothing a second time", () =>
    Effect.gen(function*() {
      const store = yield* DeviceStore
      const publisher = yield* CleanPublisher
      // the middle row is over the server's max payload (8 MiB, nats.conf): its publish fails, the others' succeed
      const huge = JSON.stringify({ pad: "x".repeat(9 * 1_024 * 1_024) })
      yield* store.commit({ ...nothing, app: APP, outbox: [{ kind: "clean", body: "{\"n\":1}" }, { kind: "clean", body: huge }, { kind: "clean", body: "{\"n\":3}" }] })
      const [first, failing, third] = (yield* store.outbox(APP, 0, 10, Infinity)).map((row) => row.id)

      // A run publishes what it can and ends once every row left failed (in the pipeline, the whole
      // pipeline then starts again): rows it published but did not delete yet are what a crash leaves.
      const run = Effect.gen(function*() {
        const exit = yield* publishOutbox(APP, { store, publisher, wake: yield* Queue.sliding<void>(1), done: [] }).pipe(Effect.exit)
        assert.isTrue(Exit.isFailure(exit))
      })
      const left = Effect.map(store.outbox(APP, 0, 10, Infinity), (rows) => rows.map((row) => row.id))

      // the first run publishes rows 1 and 3, and row 2 fails
      yield* run
      assert.deepStrictEqual(yield* onSubject, [first, third])
      assert.deepStrictEqual(yield* left, [first, failing, third])

      // the next run deletes rows 1 and 3 without publishing them again, keeps row 2, publishes row 4
      yield* store.commit({ ...nothing, app: APP, outbox: [{ kind: "clean", body: "{\"n\":4}" }] })
      const fourth = (yield* left)[3]!
      yield* run
      assert.deepStrictEqual(yield* onSubject, [first, third, fourth])
      assert.deepStrictEqual(yield* left, [failing, fourth])

      // and the one after it, from the fence the second run set: row 4 deleted, not published again; row 2 kept
      yield* run
      assert.deepStrictEqual(yield* onSubject, [first, third, fourth])
      assert.deepStrictEqual(yield* left, [failing])
      assert.isAbove((yield* store.fences(APP)).clean ?? 0, 0)
    }))
})
