/**
 * Shards over cluster members on a real nats-server (KV membership and leases): two members in this
 * process, each with its own Cluster, as two processes would have.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Option, Scope, Stream } from "effect"
import { runShards } from "../../actors/runtime/Shards.ts"
import { Cluster } from "../../domain/Cluster.ts"
import { layerCluster } from "../../infra/nats/cluster.ts"
import { eventually } from "../fixtures/http.ts"
import { layerTestNats } from "../fixtures/nats.ts"

const SHARDS = 16

/** Who runs each shard's job right now, and the most that ever ran one shard at once. */
const ownership = () => {
  const running = new Map<number, Set<string>>()
  let most = 0
  const job = (member: string) => (shard: number, started: Effect.Effect<void>) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const owners = running.get(shard) ?? new Set<string>()
        owners.add(member)
        running.set(shard, owners)
        most = Math.max(most, owners.size)
      }),
      () => Effect.sync(() => void running.get(shard)?.delete(member))
    ).pipe(Effect.andThen(started), Effect.andThen(Effect.never), Effect.scoped)
  const shardsOf = (member: string) => [...running].filter(([, owners]) => owners.has(member)).map(([shard]) => shard).sort((a, b) => a - b)
  return { job, shardsOf, most: () => most }
}

/** A member: its own Cluster (membership, leases) and shard runner, until its scope closes. */
const member = (job: (member: string) => (shard: number, started: Effect.Effect<void>) => Effect.Effect<never>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void)) // should the test end first
    const context = yield* Layer.buildWithScope(Layer.fresh(layerCluster), scope)
    const cluster = Context.get(context, Cluster)
    const owned = yield* runShards({ shards: SHARDS, run: job(cluster.self), tick: "100 millis" }).pipe(
      Effect.provideContext(context),
      Scope.provide(scope)
    )
    // the shards it owns now: the first element of the changes
    const ownedNow = Effect.map(Stream.runHead(owned.changes), (set) => Option.match(set, { onNone: () => [], onSome: (s) => [...s].sort((x, y) => x - y) }))
    return { id: cluster.self, ownedNow, leave: Scope.close(scope, Exit.void) }
  })

layer(layerTestNats(), { excludeTestServices: true, timeout: 60_000 })("shards over cluster members", (it) => {
  describe("members joining and leaving", () => {
    it.effect("a joining member gets its share, one owner per shard at a time; a leaving one's shards go back at once", () =>
      Effect.gen(function*() {
        const { job, shardsOf, most } = ownership()
        const all = Array.from({ length: SHARDS }, (_, i) => i)
        const a = yield* member(job)
        assert.deepStrictEqual(shardsOf(a.id), all, "alone, it owns every shard once it has started")

        const b = yield* member(job)
        yield* eventually(Effect.sync(() => [shardsOf(a.id), shardsOf(b.id)]), ([ofA, ofB]) =>
          ofA!.length > 0 && ofB!.length > 0 && JSON.stringify([...ofA!, ...ofB!].sort((x, y) => x - y)) === JSON.stringify(all))
        const processes = yield* Cluster.use((cluster) => cluster.processes).pipe(Effect.provide(Layer.fresh(layerCluster)))
        assert.includeMembers(processes.map((p) => p.id), [a.id, b.id])
        assert.deepStrictEqual(processes.find((p) => p.id === b.id)?.shards, shardsOf(b.id))

        yield* b.leave
        // b gave its leases back and left: a takes them without waiting for any TTL (10 s)
        yield* eventually(Effect.sync(() => shardsOf(a.id)), (ofA) => ofA.length === SHARDS, "9 seconds")
        assert.strictEqual(most(), 1, "never two owners of a shard at once")
        assert.deepStrictEqual(yield* eventually(a.ownedNow, (shards) => shards.length === SHARDS), all, "its owned shards, as published")
        yield* a.leave
      }))
  })
})
