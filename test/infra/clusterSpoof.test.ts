/**
 * Holes found attacking the cluster's KV buckets as the read-only `reader` NATS user. The reader may
 * not publish on `$KV.>`, but it may ask the JetStream API, and the server publishes the answer on
 * whatever reply subject the caller names: a reply onto `$KV.tributary-members.<anything>` was stored
 * by the members bucket as a member. Every process then spread the shards over members that do not
 * exist and handed back the shards those "owned"; nobody took them, so their commands waited until
 * the fake entries expired (10 s), and a reader repeating the trick every few seconds stopped most
 * writes for good. (The root cause, reply subjects landing in platform streams, is issue 6 item 1.)
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Exit, Option } from "effect"
import { Cluster } from "../../domain/Cluster.ts"
import { layerCluster } from "../../infra/nats/cluster.ts"
import { connectAsReader, layerTestNats } from "../fixtures/nats.ts"

layer(layerTestNats(), { excludeTestServices: true, timeout: 60_000 })("cluster membership against the reader user", (it) => {
  describe("reply subjects onto the members bucket", () => {
    it.effect("a JetStream API answer the reader directs onto $KV.tributary-members.* is not taken for a member", () =>
      Effect.gen(function*() {
        const cluster = yield* Cluster
        const reader = yield* connectAsReader
        for (let i = 0; i < 3; i++) reader.publish("$JS.API.STREAM.INFO.HISTORY", "", { reply: `$KV.tributary-members.evil-${i}` })
        // named like a member of another host: the value still tells it apart
        reader.publish("$JS.API.STREAM.INFO.HISTORY", "", { reply: "$KV.tributary-members.elsewhere-4242-abcdef" })
        yield* Effect.promise(() => reader.flush())
        yield* Effect.sleep("500 millis") // the server's answers are stored by then
        const members = yield* cluster.members
        assert.deepStrictEqual(members, [cluster.self], "only the real process is a member")
        const processes = yield* cluster.processes
        assert.deepStrictEqual(processes.map((p) => p.id), [cluster.self], "the admin view lists no phantom process")
      }).pipe(Effect.provide(layerCluster)))
  })

  describe("reply subjects onto the leases bucket", () => {
    it.effect("a JetStream API answer the reader directs onto $KV.tributary-leases.shard.<n> neither takes a held lease nor blocks a free one", () =>
      Effect.gen(function*() {
        const cluster = yield* Cluster
        const reader = yield* connectAsReader
        const held = yield* cluster.tryLease("shard.0")
        assert.isTrue(Option.isSome(held), "shard.0 is free at first")
        // Junk over the held lease, and over a free one.
        reader.publish("$JS.API.STREAM.INFO.HISTORY", "", { reply: "$KV.tributary-leases.shard.0" })
        reader.publish("$JS.API.STREAM.INFO.HISTORY", "", { reply: "$KV.tributary-leases.shard.1" })
        yield* Effect.promise(() => reader.flush())
        yield* Effect.sleep("500 millis")
        const renewed = yield* Effect.exit(Option.getOrThrow(held).renew)
        assert.isTrue(Exit.isSuccess(renewed), `the holder keeps shard.0: ${String(renewed)}`)
        for (let i = 0; i < 3; i++) {
          const again = yield* Effect.exit(Option.getOrThrow(held).renew)
          assert.isTrue(Exit.isSuccess(again), `and renews it again and again: ${String(again)}`)
        }
        const free = yield* cluster.tryLease("shard.1")
        assert.isTrue(Option.isSome(free), "shard.1 held by nobody can be taken at once, not 10 s later")
        const processes = yield* cluster.processes
        assert.deepStrictEqual(processes, [{ id: cluster.self, shards: [0, 1] }], "the admin view shows the real holder")
        yield* Option.getOrThrow(held).release
        yield* Option.getOrThrow(free).release
      }).pipe(Effect.provide(layerCluster)))
  })
})
