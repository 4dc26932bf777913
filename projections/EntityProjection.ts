/**
 * Feeds the entity read model from the global order of the event store — the same order HISTORY
 * carries — catching up from the read model's checkpoint, then following live. It reads the store
 * rather than HISTORY so that a rebuild sees all of history, not only HISTORY's retention window.
 * A failure restarts the feed from the checkpoint after a backoff; `rebuild` starts over from zero.
 */
import { Context, Effect, FiberHandle, Layer, Metric, Schedule, Stream } from "effect"
import { isEntityEventType } from "../domain/entity.ts"
import { toEnvelopes } from "../domain/envelope.ts"
import { EventStore } from "../domain/EventStore.ts"
import { EntityReadModel, type ReadModelError } from "./EntityReadModel.ts"

const applied = Metric.counter("tributary_projection_events_total", { description: "events applied to read models" })
const skipped = Metric.counter("tributary_projection_events_skipped_total", { description: "events of types this version does not know" })
const checkpointGauge = Metric.gauge("tributary_projection_checkpoint", { description: "global position a read model has applied" })

export class EntityProjection extends Context.Service<EntityProjection, {
  /** Forgets the read model and replays all of history into it; answers once the replay has started. */
  readonly rebuild: Effect.Effect<void, ReadModelError>
}>()("tributary/EntityProjection") {}

const feed = Effect.gen(function*() {
  const store = yield* EventStore
  const model = yield* EntityReadModel
  const after = yield* model.checkpoint
  const attributes = { projection: "entities" }
  yield* store.subscribeToAll(after === undefined ? {} : { after }).pipe(
    Stream.groupedWithin(1_000, "2 millis"),
    Stream.runForEach((batch) =>
      Effect.gen(function*() {
        const envelopes = toEnvelopes(batch)
        const unknown = envelopes.filter((e) => !isEntityEventType(e.type))
        if (unknown.length > 0) {
          yield* Metric.update(Metric.withAttributes(skipped, attributes), unknown.length)
          yield* Effect.logWarning("entity projection skips events of types it does not know", { types: [...new Set(unknown.map((e) => e.type))] })
        }
        yield* model.apply(envelopes)
        yield* Metric.update(Metric.withAttributes(applied, attributes), envelopes.length)
        yield* Metric.update(Metric.withAttributes(checkpointGauge, attributes), batch[batch.length - 1]!.position)
      })
    )
  )
}).pipe(
  Effect.tapCause((cause) => Effect.logError("entity projection failed; restarting from its checkpoint", cause)),
  Effect.retry(Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("10 seconds")]))
)

export const layer = Layer.effect(
  EntityProjection,
  Effect.gen(function*() {
    const context = yield* Effect.context<EventStore | EntityReadModel>()
    const model = yield* EntityReadModel
    const handle = yield* FiberHandle.make()
    const start = FiberHandle.run(handle, Effect.provideContext(feed, context))
    yield* start
    return EntityProjection.of({
      rebuild: Effect.gen(function*() {
        yield* FiberHandle.clear(handle)
        yield* model.reset
        yield* start
      })
    })
  })
)
