/**
 * Careless and hostile batches on the bus (CommandBus.sendBatch): an empty one, one command twice in
 * one batch, the same entity many times in one batch, and 10,000 commands at once.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { CommandBus, type CommandReply } from "../../domain/CommandBus.ts"
import type { EntityCommand } from "../../domain/entity.ts"
import { EventStore } from "../../domain/EventStore.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

let n = 0
const command = (id: string, action: EntityCommand["action"], commandId = `batch-edge-${++n}`): EntityCommand =>
  ({ commandId, correlationId: commandId, entityType: "advertiser", entityId: id, action })
const put = (id: string, name: string, commandId?: string) => command(id, { _tag: "Put", fields: { name } }, commandId)
const revision = (reply: CommandReply) => reply._tag === "Accepted" ? reply.entity.revision : reply._tag

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 120_000 })("batches at their edges", (it) => {
  it.effect("an empty batch answers nothing at once", () =>
    Effect.gen(function*() {
      const bus = yield* CommandBus
      assert.deepStrictEqual(yield* bus.sendBatch([]), [])
    }))

  it.effect("one command twice in one batch is applied once, both answered with its outcome", () =>
    Effect.gen(function*() {
      const bus = yield* CommandBus
      const store = yield* EventStore
      const twice = put("700001", "Once", "batch-edge-twice")
      const replies = yield* bus.sendBatch([twice, twice, put("700001", "Then")])
      assert.deepStrictEqual(replies.map(revision), [0, 0, 1])
      assert.strictEqual((yield* store.readStream("advertiser-700001")).length, 2)
    }))

  it.effect("one entity 500 times in one batch: applied in the batch's order", () =>
    Effect.gen(function*() {
      const bus = yield* CommandBus
      const store = yield* EventStore
      const replies = yield* bus.sendBatch(Array.from({ length: 500 }, (_, i) => put("700002", `v${i}`)))
      assert.deepStrictEqual(replies.map(revision), Array.from({ length: 500 }, (_, i) => i))
      const events = yield* store.readStream("advertiser-700002")
      assert.deepStrictEqual(events.map((e) => JSON.stringify(e.data).match(/"name":"(v\d+)"/)?.[1]), Array.from({ length: 500 }, (_, i) => `v${i}`))
    }))

  it.effect("10,000 commands in one batch are all answered and stored once", () =>
    Effect.gen(function*() {
      const bus = yield* CommandBus
      const store = yield* EventStore
      const commands = Array.from({ length: 10_000 }, (_, i) => put(String(800_000 + i), `Advertiser ${i}`))
      const started = Date.now()
      const replies = yield* bus.sendBatch(commands, { timeout: "100 seconds" })
      console.log("10,000 in one batch answered in", Date.now() - started, "ms")
      const tags = new Map<string, number>()
      for (const r of replies) tags.set(String(revision(r)), (tags.get(String(revision(r))) ?? 0) + 1)
      assert.deepStrictEqual([...tags], [["0", 10_000]])
      const sample = yield* store.readStream("advertiser-809999")
      assert.strictEqual(sample.length, 1)
    }), { timeout: 120_000 })
})
