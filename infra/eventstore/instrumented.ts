/**
 * Metrics for any event store: appends (calls and events, by outcome) and append latency. Wraps an
 * implementation's layer, so SQLite and EventStoreDB report the same series.
 */
import { Duration, Effect, Layer, Metric } from "effect"
import { EventStore } from "../../domain/EventStore.ts"

const appends = Metric.counter("tributary_eventstore_appends_total", { description: "appendToStream calls, by outcome" })
const appendedEvents = Metric.counter("tributary_eventstore_events_appended_total", { description: "events appended" })
const appendSeconds = Metric.histogram("tributary_eventstore_append_seconds", {
  description: "appendToStream latency, from call to durable commit",
  boundaries: Metric.boundariesFromIterable([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1])
})

export const instrumented = <E, R>(store: Layer.Layer<EventStore, E, R>): Layer.Layer<EventStore, E, R> =>
  Layer.effect(
    EventStore,
    Effect.gen(function*() {
      const inner = yield* EventStore
      return EventStore.of({
        ...inner,
        appendToStream: (stream, events, expected) =>
          inner.appendToStream(stream, events, expected).pipe(
            Effect.onExit((exit) => {
              const outcome = exit._tag === "Success" ? "ok" : exit.cause.reasons.some((r) => r._tag === "Fail" && r.error._tag === "WrongExpectedRevision") ? "conflict" : "error"
              return Effect.andThen(
                Metric.update(Metric.withAttributes(appends, { outcome }), 1),
                exit._tag === "Success" ? Metric.update(appendedEvents, events.length) : Effect.void
              )
            }),
            Effect.trackDuration(appendSeconds, (d) => Duration.toSeconds(d))
          )
      })
    })
  ).pipe(Layer.provide(store))
