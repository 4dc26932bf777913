/**
 * A stalled event loop (a long synchronous step, a loaded machine) outlasting the coordination TTL:
 * every lease lapses and the shard jobs stop (LeaseLost). The tick must take the shards again; in the
 * 1M-line ingest benchmark it did not (it waited for ever in a members listing, see keysOf in
 * infra/nats/cluster.ts) and ingestion stopped with every shard idle. Real nats-server; the stall is a
 * real busy wait of this thread, with members listings in flight as on a loaded platform.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { runShards } from "../../actors/runtime/Shards.ts"
import { Cluster } from "../../domain/Cluster.ts"
import { layerCluster } from "../../infra/nats/cluster.ts"
import { eventually } from "../fixtures/http.ts"
import { layerTestNats } from "../fixtures/nats.ts"

const SHARDS = 4

/** Blocks this thread, as a long synchronous step does: no timer, no socket is served meanwhile. */
const stall = (millis: number) => Effect.sync(() => {
  const end = Date.now() + millis
  while (Date.now() < end) { /* busy */ }
})

layer(layerCluster.pipe(Layer.provideMerge(layerTestNats())), { excludeTestServices: true, timeout: 60_000 })("shards after a stall longer than the lease TTL", (it) => {
  it.effect("every shard is taken again", () =>
    Effect.gen(function*() {
      const running = new Set<number>()
      let starts = 0
      yield* runShards({
        shards: SHARDS,
        tick: "20 millis",
        run: (shard, started) =>
          Effect.acquireRelease(Effect.sync(() => void (running.add(shard), starts++)), () => Effect.sync(() => void running.delete(shard))).pipe(
            Effect.andThen(started),
            Effect.andThen(Effect.never),
            Effect.scoped
          )
      })
      assert.strictEqual(running.size, SHARDS)
      // More listings in flight when the stall begins, as on a loaded platform where each takes long.
      const cluster = yield* Cluster
      yield* Effect.forkScoped(Effect.forEach([1, 2, 3, 4], () => Effect.forever(Effect.ignore(cluster.members)), { concurrency: "unbounded" }))
      for (let round = 1; round <= 2; round++) {
        const before = starts
        yield* Effect.sleep(`${200 + round * 37} millis`)
        yield* stall(12_000) // > the 10 s TTL: every lease lapses
        // the jobs stopped (LeaseLost) and were started again
        yield* eventually(Effect.sync(() => [running.size, starts - before]), ([size, again]) => size === SHARDS && again! >= SHARDS, "20 seconds")
      }
    }).pipe(Effect.scoped), 120_000)
})
