/**
 * The one runner of every projection: each follows the event store's global order — the order HISTORY
 * carries — from its own checkpoint, catching up, then following live. It reads the store rather than
 * HISTORY so that a rebuild sees all of history, not only HISTORY's retention window. A failure restarts
 * that projection from its checkpoint after a backoff; `rebuild(name)` starts it over from zero. Each
 * projection's lag (head position minus checkpoint) is a gauge with the attribute `projection`.
 */
import { Context, Effect, FiberMap, Layer, Metric, Schedule, Schema, Stream } from "effect"
import { toEnvelopes } from "../domain/envelope.ts"
import { EventStore } from "../domain/EventStore.ts"
import { ProjectionStore } from "./ProjectionStore.ts"
import type { ReadModelError } from "./ReadModelError.ts"

const applied = Metric.counter("tributary_projection_events_total", { description: "events applied to read models" })
const skipped = Metric.counter("tributary_projection_events_skipped_total", { description: "events of types this version does not know" })
const checkpointGauge = Metric.gauge("tributary_projection_checkpoint", { description: "global position a read model has applied" })
export const projectionLag = Metric.gauge("tributary_projection_lag_events", { description: "events in the store a projection has not applied yet (head position minus checkpoint)" })

export class ProjectionNotFound extends Schema.TaggedError<ProjectionNotFound>()("ProjectionNotFound", { name: Schema.String }) {}

export class Projections extends Context.Service<Projections, {
  /** the projections running, by name */
  readonly names: ReadonlyArray<string>
  /** Forgets a projection's rows and replays all of history into it; answers once the replay has started. */
  readonly rebuild: (name: string) => Effect.Effect<void, ProjectionNotFound | ReadModelError>
}>()("tributary/Projections") {}

const feed = (name: string) =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const projections = yield* ProjectionStore
    const attributes = { projection: name }
    const after = yield* projections.checkpoint(name)
    const reportLag = (position: number) =>
      Effect.flatMap(store.headPosition, (head) => Metric.update(Metric.withAttributes(projectionLag, attributes), Math.max(0, (head ?? 0) - position)))
    yield* reportLag(after ?? 0)
    yield* store.subscribeToAll(after === undefined ? {} : { after }).pipe(
      Stream.groupedWithin(1_000, "2 millis"),
      Stream.runForEach((batch) =>
        Effect.gen(function*() {
          const position = batch[batch.length - 1]!.position
          const envelopes = toEnvelopes(batch)
          const unknown = yield* projections.apply(name, envelopes, position)
          if (unknown.length > 0) {
            yield* Metric.update(Metric.withAttributes(skipped, attributes), unknown.length)
            yield* Effect.logWarning("projection skips events of types it does not know", { projection: name, types: [...new Set(unknown)] })
          }
          yield* Metric.update(Metric.withAttributes(applied, attributes), envelopes.length - unknown.length)
          yield* Metric.update(Metric.withAttributes(checkpointGauge, attributes), position)
          yield* reportLag(position)
        })
      )
    )
  }).pipe(
    Effect.tapCause((cause) => Effect.logError("projection failed; restarting from its checkpoint", { projection: name, cause })),
    Effect.retry(Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("10 seconds")]))
  )

/** Runs every projection of the ProjectionStore while the layer lives. */
export const layer = Layer.effect(
  Projections,
  Effect.gen(function*() {
    const context = yield* Effect.context<EventStore | ProjectionStore>()
    const store = yield* ProjectionStore
    const running = yield* FiberMap.make<string>()
    const start = (name: string) => FiberMap.run(running, name, Effect.provideContext(feed(name), context))
    for (const name of store.names) yield* start(name)
    return Projections.of({
      names: store.names,
      rebuild: (name) =>
        Effect.gen(function*() {
          if (!store.names.includes(name)) return yield* new ProjectionNotFound({ name })
          yield* FiberMap.remove(running, name)
          yield* store.reset(name)
          yield* start(name)
        })
    })
  })
)
