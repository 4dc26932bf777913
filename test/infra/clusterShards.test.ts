/**
 * A process started with another SHARDS than the running ones (a careless operator): it used to join
 * silently, hashing the same entity to another shard than the others, so that entity had two
 * owners — two writers, and its commands no longer applied in the order they were sent. It must refuse to join.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Context, Effect, Exit, Layer } from "effect"
import { Cluster } from "../../domain/Cluster.ts"
import { layerClusterFor } from "../../infra/nats/cluster.ts"
import { layerTestNats } from "../fixtures/nats.ts"

layer(layerTestNats(), { excludeTestServices: true, timeout: 60_000 })("SHARDS across the processes of one cluster", (it) => {
  describe("joining", () => {
    it.effect("a process with another SHARDS than a live one refuses to join; one with the same joins", () =>
      Effect.gen(function*() {
        const first = yield* Layer.build(Layer.fresh(layerClusterFor(64)))
        const self = Context.get(first, Cluster).self

        const other = yield* Effect.exit(Effect.scoped(Layer.build(Layer.fresh(layerClusterFor(8)))))
        assert.isTrue(Exit.isFailure(other), "SHARDS=8 beside a live SHARDS=64 must not join")
        assert.include(String(Exit.isFailure(other) ? other.cause : ""), "SHARDS=8")

        const same = yield* Effect.scoped(Effect.gen(function*() {
          const context = yield* Layer.build(Layer.fresh(layerClusterFor(64)))
          return yield* Context.get(context, Cluster).members
        }))
        assert.include(same, self, "the same SHARDS joins")
      }))
  })
})
