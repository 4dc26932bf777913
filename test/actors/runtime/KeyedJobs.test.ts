/**
 * Keyed jobs (actors/runtime/KeyedJobs.ts) on a real nats-server's leases: a key no longer listed ends its
 * job and hands its lease back when the jobs say so (a deleted destination's lanes), and keeps it when they
 * do not (an app between batches). Before stop 28 a deleted destination's lanes kept their jobs, leases and
 * metrics for the life of the process (an outside attack counted 914 deliverers for 34 lanes).
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer, Metric, Option } from "effect"
import { runKeyedJobs } from "../../../actors/runtime/KeyedJobs.ts"
import { Cluster } from "../../../domain/Cluster.ts"
import { layerCluster } from "../../../infra/nats/cluster.ts"
import { eventually } from "../../fixtures/http.ts"
import { layerTestNats } from "../../fixtures/nats.ts"

/** Jobs over the keys `listed` holds (changed by the test), each counted in `running` while it runs. */
const jobs = (name: string, listed: Set<string>, endWhenUnlisted: boolean) => {
  const running = new Set<string>()
  const gauge = Metric.gauge(`test_keyed_jobs_${name}`)
  const run = runKeyedJobs({
    name,
    leaseKey: (key) => `test.${name}.${key}`,
    keys: Effect.sync((): ReadonlySet<string> => new Set(listed)),
    run: (key) => Effect.acquireRelease(Effect.sync(() => running.add(key)), () => Effect.sync(() => running.delete(key))).pipe(Effect.andThen(Effect.never), Effect.scoped),
    tick: "100 millis",
    running: gauge,
    endWhenUnlisted
  })
  return { run, running, gauge }
}

layer(Layer.provideMerge(layerCluster, layerTestNats()), { excludeTestServices: true, timeout: 60_000 })("keyed jobs", (it) => {
  describe("a key no longer listed", () => {
    it.effect("ends its job and hands its lease back when the jobs end with their keys; keeps it otherwise", () =>
      Effect.gen(function*() {
        const cluster = yield* Cluster
        const listedEnding = new Set(["a", "b"])
        const listedKeeping = new Set(["a", "b"])
        const ending = jobs("ending", listedEnding, true)
        const keeping = jobs("keeping", listedKeeping, false)
        yield* Effect.forkScoped(ending.run)
        yield* Effect.forkScoped(keeping.run)
        yield* eventually(Effect.sync(() => [ending.running.size, keeping.running.size]), ([e, k]) => e === 2 && k === 2, "20 seconds")
        // "b" goes: a destination deleted; an app whose batches are all done for now
        listedEnding.delete("b")
        listedKeeping.delete("b")
        yield* eventually(Effect.sync(() => [...ending.running]), (keys) => keys.length === 1 && keys[0] === "a", "20 seconds")
        assert.strictEqual((yield* Metric.value(ending.gauge)).value, 1)
        // its lease is free again: this process takes it at once
        const lease = yield* eventually(cluster.tryLease("test.ending.b"), Option.isSome, "20 seconds")
        assert.isTrue(Option.isSome(lease))
        // the other kind keeps its job (and lease) between lulls
        assert.deepStrictEqual([...keeping.running].sort(), ["a", "b"])
        assert.isTrue(Option.isNone(yield* cluster.tryLease("test.keeping.b")))
      }))
  })
})
