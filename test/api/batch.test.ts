import { assert, layer } from "@effect/vitest"
import { headers } from "@nats-io/transport-node"
import { Effect } from "effect"
import { checkedHeader } from "../../domain/checked.ts"
import { commandBatchMark, CommandBus, type CommandReply } from "../../domain/CommandBus.ts"
import type { EntityCommand } from "../../domain/entity.ts"
import { EventStore } from "../../domain/EventStore.ts"
import { shardOf } from "../../domain/shards.ts"
import { batchSubject } from "../../domain/subjects.ts"
import { Nats } from "../../infra/nats/Nats.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

let n = 0
const command = (id: string, action: EntityCommand["action"]): EntityCommand => {
  const commandId = `batch-test-${++n}`
  return { commandId, correlationId: commandId, entityType: "advertiser", entityId: id, action }
}
const put = (id: string, name: string) => command(id, { _tag: "Put", fields: { name } })

/** `count` advertiser ids of one shard (the default 64 shards), from `from` on. */
const idsOfShard = (shard: number, count: number, from: number) => {
  const ids: Array<string> = []
  for (let i = from; ids.length < count; i++) if (shardOf(String(i), 64) === shard) ids.push(String(i))
  return ids
}

const revision = (reply: CommandReply) => reply._tag === "Accepted" ? reply.entity.revision : reply._tag

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })("a batch of commands on the bus", (it) => {
  it.effect("answers each command on its own, in order, and commits one shard's entities in one multi-stream append", () =>
    Effect.gen(function*() {
      const bus = yield* CommandBus
      const store = yield* EventStore
      const ids = idsOfShard(7, 300, 10_000)
      const commands = ids.map((id) => put(id, `Advertiser ${id}`))
      const replies = yield* bus.sendBatch(commands)
      assert.strictEqual(replies.length, 300)
      assert.isTrue(replies.every((r) => r._tag === "Accepted" && r.outcome === "created"), JSON.stringify(replies.find((r) => r._tag !== "Accepted")))
      assert.deepStrictEqual(replies.map((r) => r._tag === "Accepted" ? r.entity.id : ""), ids)
      const first = yield* Effect.forEach(ids, (id) => Effect.map(store.readStream(`advertiser-${id}`), (events) => events[0]!))
      // one commit: one commit time, and the global positions of the batch's events follow each other
      assert.strictEqual(new Set(first.map((e) => e.recordedAt)).size, 1)
      const positions = first.map((e) => e.position).sort((a, b) => a - b)
      assert.strictEqual(positions[positions.length - 1]! - positions[0]!, ids.length - 1)
    }))

  it.effect("keeps each command's own outcome: a rejection, a second command for one entity, other shards", () =>
    Effect.gen(function*() {
      const bus = yield* CommandBus
      const [a, b] = idsOfShard(3, 2, 50_000)
      const other = idsOfShard(4, 1, 50_000)[0]!
      const commands = [
        put(a!, "A"),
        put(b!, ""), // an invalid name: rejected, the rest applied
        command(a!, { _tag: "Patch", patch: { currency: "EUR" } }), // the same entity again, after its first
        put(other, "Other shard")
      ]
      const replies = yield* bus.sendBatch(commands)
      assert.deepStrictEqual(replies.map(revision), [0, "Rejected", 1, 0])
      const patched = replies[2]!
      assert.deepStrictEqual(patched._tag === "Accepted" ? patched.entity.state : null, { name: "A", currency: "EUR" })
      // sent again (a retry), every command gets its first answer and nothing is applied twice
      const again = yield* bus.sendBatch([commands[0]!, commands[2]!])
      assert.deepStrictEqual(again.map(revision), [0, 1])
      assert.strictEqual((yield* (yield* EventStore).readStream(`advertiser-${a}`)).length, 2)
    }))

  it.effect("answers a batch sent for outcomes with each command's outcome alone, no entity, rejections kept", () =>
    Effect.gen(function*() {
      const bus = yield* CommandBus
      const [a, b] = idsOfShard(5, 2, 70_000)
      const commands = [put(a!, "A"), put(b!, ""), command(a!, { _tag: "Patch", patch: { currency: "EUR" } })]
      // the bus marks what it checked before publishing: the shard takes it as it is (domain/checked.ts)
      const seen = (yield* Nats).connection.subscribe("cmd._batch.5.>", { max: 1 })
      const outcomes = yield* bus.sendBatchOutcomes(commands)
      const marked = yield* Effect.promise(async () => {
        for await (const msg of seen) return msg.headers?.get(checkedHeader)
        return undefined
      }).pipe(Effect.timeout("10 seconds"))
      assert.strictEqual(marked, commandBatchMark)
      assert.deepStrictEqual(outcomes.map((o) => o._tag === "Accepted" ? o : o._tag), [
        { _tag: "Accepted", outcome: "created" },
        "Rejected",
        { _tag: "Accepted", outcome: "updated" }
      ])
      // the same commands again: their first outcomes, nothing applied twice; the full answer still carries the entity
      assert.deepStrictEqual((yield* bus.sendBatchOutcomes([commands[2]!])).map((o) => o._tag === "Accepted" ? o.outcome : o._tag), ["updated"])
      assert.deepStrictEqual((yield* bus.sendBatch([commands[2]!])).map(revision), [1])
      assert.strictEqual((yield* (yield* EventStore).readStream(`advertiser-${a}`)).length, 2)
      // on the wire: the shard's answer to such a message holds no entity (decoding would drop one)
      const { connection, jetstream } = yield* Nats
      const inbox = `_INBOX.outcomes-test-${Date.now()}`
      const answer = connection.subscribe(inbox, { max: 1 })
      const h = headers()
      h.set("Tributary-Reply-To", inbox)
      const raw = { ...put(idsOfShard(5, 1, 80_000)[0]!, "Raw"), deadline: Date.now() + 30_000 }
      yield* Effect.promise(() => jetstream.publish(batchSubject(5, raw.commandId), JSON.stringify({ commands: [raw], outcomes: true }), { headers: h }))
      const text = yield* Effect.promise(async () => {
        for await (const msg of answer) return msg.string()
        return ""
      }).pipe(Effect.timeout("30 seconds"))
      assert.deepStrictEqual(JSON.parse(text), { replies: [{ _tag: "Accepted", outcome: "created" }] })
    }))

  it.effect("splits a batch too large for one bus message and still answers every command", () =>
    Effect.gen(function*() {
      const bus = yield* CommandBus
      const ids = idsOfShard(9, 40, 90_000)
      // 40 × 300 KB: over the 8 MB payload limit of nats.conf (a field the type does not have: each is rejected on its own)
      const big = "x".repeat(300_000)
      const replies = yield* bus.sendBatch(ids.map((id) => command(id, { _tag: "Put", fields: { name: "Big", notes: big } })))
      assert.strictEqual(replies.length, 40)
      assert.isTrue(replies.every((r) => r._tag === "Rejected" && r.error._tag === "InvalidEntity"), JSON.stringify(replies[0]).slice(0, 300))
    }))

  it.effect("refuses, before publishing, a command whose ids would not fit the bus's headers", () =>
    Effect.gen(function*() {
      const bus = yield* CommandBus
      const oversized = { ...put("77", "A"), correlationId: "x".repeat(70_000) }
      const refused = yield* Effect.flip(bus.sendBatch([put("78", "B"), oversized]))
      assert.strictEqual(refused._tag, "CommandBusError")
      assert.strictEqual((yield* Effect.flip(bus.send(oversized)))._tag, "CommandBusError")
      // nothing of the refused batch was published
      assert.strictEqual((yield* (yield* EventStore).readStream("advertiser-78")).length, 0)
    }))
})
