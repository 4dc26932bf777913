/**
 * What `/ready` checks: that this node can do its work now, not merely that its process runs (that
 * is `/health`). Each check fails with `NotReady` saying why:
 * - `nats`: the connection answers a round trip and JetStream answers an API request;
 * - `eventStore`: the event store answers (its head position);
 * - `relay`: its checkpoint is valid, some live process holds its lease, and the oldest event not yet
 *   in HISTORY is younger than `relayMaxLag`;
 * - `shards`: every shard has an owner among the live processes.
 */
import { Duration, Effect, Option, Schema } from "effect"
import { Cluster } from "../domain/Cluster.ts"
import { EventStore } from "../domain/EventStore.ts"
import { Nats, tryNats } from "../infra/nats/Nats.ts"
import { relayProblem } from "../infra/relayStatus.ts"

/** A readiness check failed; `reason` says what is wrong. */
export class NotReady extends Schema.TaggedError<NotReady>()("NotReady", { reason: Schema.String }) {}

export interface ReadinessOptions {
  /** the platform's shard count (SHARDS) */
  readonly shards: number
  /** how old the oldest event not yet in HISTORY may be (RELAY_MAX_LAG) */
  readonly relayMaxLag: Duration.Duration
}

const because = (reason: string) => (error: { readonly _tag: string; readonly operation?: string }) =>
  new NotReady({ reason: `${reason} (${error._tag}${error.operation === undefined ? "" : `: ${error.operation}`})` })

/** The checks by name, their services provided: each runs on its own. */
export const readinessChecks = (options: ReadinessOptions) =>
  Effect.gen(function*() {
    const context = yield* Effect.context<Nats | EventStore>()
    const { connection, manager } = yield* Nats
    const store = yield* EventStore
    const cluster = yield* Cluster

    const nats = Effect.gen(function*() {
      if (connection.isClosed()) return yield* new NotReady({ reason: "the NATS connection is closed" })
      yield* tryNats("flush", () => connection.flush()).pipe(Effect.mapError(because("NATS does not answer")))
      yield* tryNats("account info", () => manager.getAccountInfo()).pipe(Effect.mapError(because("JetStream does not answer")))
    })

    const eventStore = store.headPosition.pipe(Effect.mapError(because("the event store does not answer")))

    const relay = relayProblem(Duration.toSeconds(options.relayMaxLag)).pipe(
      Effect.provideContext(context),
      Effect.mapError(because("the relay's state cannot be read")),
      Effect.flatMap(Option.match({ onNone: () => Effect.void, onSome: (reason) => Effect.fail(new NotReady({ reason })) }))
    )

    const shards = Effect.gen(function*() {
      const live = new Set(yield* cluster.members)
      const owned = new Set((yield* cluster.processes).filter((p) => live.has(p.id)).flatMap((p) => p.shards))
      const orphans = Array.from({ length: options.shards }, (_, shard) => shard).filter((shard) => !owned.has(shard))
      if (orphans.length > 0) {
        return yield* new NotReady({ reason: `${orphans.length} of ${options.shards} shards have no live owner: ${orphans.slice(0, 16).join(", ")}` })
      }
    }).pipe(Effect.catchTag("ClusterError", (error) => Effect.fail(because("the cluster cannot be read")(error))))

    return { nats, eventStore, relay, shards } satisfies Record<string, Effect.Effect<void, NotReady>>
  })
