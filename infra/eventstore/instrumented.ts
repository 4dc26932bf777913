/**
 * Metrics for any event store: appends (calls and events, by operation and outcome) and append latency.
 * Wraps an implementation's layer, so SQLite and EventStoreDB report the same series.
 */
import { Duration, Effect, Layer, Metric } from "effect"
import type { Exit } from "effect"
import { EventStore } from "../../domain/EventStore.ts"
import type { EventStoreError } from "../../domain/EventStore.ts"

const appends = Metric.counter("tributary_eventstore_appends_total", { description: "appendToStream calls, by outcome" })
const multiAppends = Metric.counter("tributary_eventstore_multi_appends_total", {
  description: "appendToStreams calls (one commit to many streams), by outcome"
})
const appendedEvents = Metric.counter("tributary_eventstore_events_appended_total", { description: "events appended" })
const appendSeconds = Metric.histogram("tributary_eventstore_append_seconds", {
  description: "appendToStream latency, from call to durable commit",
  boundaries: Metric.boundariesFromIterable([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1])
})
const multiAppendSeconds = Metric.histogram("tributary_eventstore_multi_append_seconds", {
  description: "appendToStreams latency, from call to durable commit",
  boundaries: Metric.boundariesFromIterable([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5, 10])
})

const conflictTags = new Set(["WrongExpectedRevision", "WrongExpectedRevisions"])
const outcomeOf = (exit: Exit.Exit<unknown, { readonly _tag: string } | EventStoreError>) =>
  exit._tag === "Success"
    ? "ok"
    : exit.cause.reasons.some((r) => r._tag === "Fail" && conflictTags.has(r.error._tag))
    ? "conflict"
    : "error"

export const instrumented = <E, R>(store: Layer.Layer<EventStore, E, R>): Layer.Layer<EventStore, E, R> =>
  Layer.effect(
    EventStore,
    Effect.gen(function*() {
      const inner = yield* EventStore
      return EventStore.of({
        ...inner,
        appendToStream: (stream, events, expected) =>
          inner.appendToStream(stream, events, expected).pipe(
            Effect.onExit((exit) =>
              Effect.andThen(
                Metric.update(Metric.withAttributes(appends, { outcome: outcomeOf(exit) }), 1),
                exit._tag === "Success" ? Metric.update(appendedEvents, events.length) : Effect.void
              )
            ),
            Effect.trackDuration(appendSeconds, (d) => Duration.toSeconds(d))
          ),
        appendToStreams: (streamAppends) =>
          inner.appendToStreams(streamAppends).pipe(
            Effect.onExit((exit) =>
              Effect.andThen(
                Metric.update(Metric.withAttributes(multiAppends, { outcome: outcomeOf(exit) }), 1),
                exit._tag === "Success"
                  ? Metric.update(appendedEvents, streamAppends.reduce((n, a) => n + a.events.length, 0))
                  : Effect.void
              )
            ),
            Effect.trackDuration(multiAppendSeconds, (d) => Duration.toSeconds(d))
          )
      })
    })
  ).pipe(Layer.provide(store))
