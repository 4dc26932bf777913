import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { Deferred, Effect, Layer } from "effect"
import { entityBehavior, type EntityMessage } from "../../../actors/entity/EntityActor.ts"
import * as EntityMemory from "../../../actors/entity/EntityMemory.ts"
import * as ActorRegistry from "../../../actors/runtime/ActorRegistry.ts"
import type { CommandReply } from "../../../domain/CommandBus.ts"
import type { EntityCommand } from "../../../domain/entity.ts"
import { EventStore } from "../../../domain/EventStore.ts"
import { layerSqlite } from "../../../infra/eventstore/sqlite.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

describe("the entity memory budget", () => {
  it("is one budget across holders: the least recently used give theirs back, never the one growing", () => {
    const budget = EntityMemory.make(1_000)
    const evicted: Array<string> = []
    const a = budget.register(() => evicted.push("a"))
    const b = budget.register(() => evicted.push("b"))
    const c = budget.register(() => evicted.push("c"))
    a.use(400)
    b.use(400)
    a.use(400) // a is now the most recently used
    c.use(400)
    assert.deepStrictEqual(evicted, ["b"])
    assert.strictEqual(Effect.runSync(budget.bytes), 800)
    c.use(5_000) // bigger than the budget alone: everyone else goes, c stays
    assert.deepStrictEqual(evicted, ["b", "a"])
    c.release()
    assert.strictEqual(Effect.runSync(budget.bytes), 0)
  })

  const store = Layer.unwrap(Effect.map(tempDir("entity-memory"), (dir) => layerSqlite({ path: join(dir, "events.db") })))
  const BUDGET = 6_000
  const actors = ActorRegistry.make({ kind: "memory-test", behavior: (stream: string) => entityBehavior(stream), mailboxCapacity: 8, idleTimeout: "1 hour" })
  const put = (id: string, name: string, commandId: string): EntityCommand => ({
    commandId, correlationId: commandId, entityType: "advertiser", entityId: id, action: { _tag: "Put", fields: { name } }
  })
  const ask = (registry: ActorRegistry.ActorRegistry<EntityMessage>, command: EntityCommand) =>
    registry.ask<CommandReply, never>(`advertiser-${command.entityId}`, (reply) => ({ command, reply: (r) => Deferred.succeed(reply, r), retryLater: () => Effect.void }))

  it.live("bounds what all live entity actors keep, in bytes; an evicted actor reads its entity again and still knows its commands", () =>
    Effect.gen(function*() {
      const registry = yield* actors
      const memory = yield* EntityMemory.EntityMemory
      const firsts: Array<CommandReply> = []
      for (let i = 1; i <= 40; i++) {
        firsts.push(yield* ask(registry, put(String(i), `advertiser ${"x".repeat(150)} ${i}`, `first-${i}`)))
        for (let k = 0; k < 3; k++) yield* ask(registry, put(String(i), `renamed ${k} ${"y".repeat(150)}`, `rename-${i}-${k}`))
        assert.isAtMost(yield* memory.bytes, BUDGET)
      }
      assert.strictEqual(yield* registry.size, 40) // all alive; most have given their memory back
      assert.isAbove(yield* memory.bytes, BUDGET / 4) // and those recently used keep theirs
      // the first entity was evicted long ago: a redelivery of its first command is still answered, not applied
      const again = yield* ask(registry, put("1", `advertiser ${"x".repeat(150)} 1`, "first-1"))
      assert.strictEqual(firsts[0]!._tag, "Accepted")
      assert.deepStrictEqual(again, firsts[0])
      assert.strictEqual((yield* (yield* EventStore).readStream("advertiser-1")).length, 4)
      // and a new command is decided on the entity as it is
      const next = yield* ask(registry, put("1", "final", "final-1"))
      assert.strictEqual(next._tag === "Accepted" ? next.entity.revision : -1, 4)
    }).pipe(Effect.provide(Layer.merge(store, EntityMemory.layer(BUDGET)))))
})
