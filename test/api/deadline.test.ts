import { assert, describe, layer } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { CommandBus } from "../../domain/CommandBus.ts"
import type { EntityCommand } from "../../domain/entity.ts"
import { EventStore } from "../../domain/EventStore.ts"
import { assertProblem, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

const put = (id: string, deadline: number): EntityCommand => ({
  commandId: `deadline-${id}`,
  correlationId: `deadline-${id}`,
  entityType: "advertiser",
  entityId: id,
  action: { _tag: "Put", fields: { name: "Late" } },
  deadline
})

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })("command deadlines", (it) => {
  describe("a command that reaches its entity after its sender gave up", () => {
    it.effect("is answered Expired and changes nothing", () =>
      Effect.gen(function*() {
        const bus = yield* CommandBus
        const now = yield* Clock.currentTimeMillis
        const reply = yield* bus.send(put("61", now - 1_000))
        assert.deepStrictEqual(reply, { _tag: "Expired", deadline: now - 1_000 })
        assert.deepStrictEqual(yield* EventStore.use((store) => store.readStream("advertiser-61")), [])
        assertProblem(yield* request({ method: "GET", url: "/v1/entities/advertiser/61" }), 404, "not-found")
      }))

    it.effect("is applied while its deadline is ahead", () =>
      Effect.gen(function*() {
        const bus = yield* CommandBus
        const reply = yield* bus.send(put("62", (yield* Clock.currentTimeMillis) + 30_000))
        assert.strictEqual(reply._tag === "Accepted" ? reply.outcome : reply._tag, "created")
        assert.strictEqual((yield* EventStore.use((store) => store.readStream("advertiser-62"))).length, 1)
      }))
  })
})
