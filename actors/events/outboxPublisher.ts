/**
 * Publishes an app's committed outbox (devices.db) to EVENTS_CLEAN and SESSIONS, oldest first, and
 * deletes each row once the server acknowledged it. On start it reads the last outbox id each subject
 * holds (infra/relay.ts's way) and deletes the rows at or below it without publishing them again: a
 * crash between publish and delete duplicates nothing, even beyond JetStream's duplicate window
 * (`Nats-Msg-Id = <app>.<row id>` covers the rest). Woken by each commit, and every second anyway.
 */
import { Effect, Metric, Queue } from "effect"
import type { CleanPublisher } from "../../domain/events/CleanOutbox.ts"
import type { DeviceStore } from "../../domain/events/DeviceStore.ts"

export const outboxPublished = Metric.counter("tributary_device_outbox_published_total", {
  description: "Clean events and ended sessions published to EVENTS_CLEAN and SESSIONS",
  incremental: true
})

const page = 2_000

export const publishOutbox = (
  app: string,
  { publisher, store, wake }: {
    readonly store: DeviceStore["Service"]
    readonly publisher: CleanPublisher["Service"]
    readonly wake: Queue.Queue<void>
  }
) =>
  Effect.gen(function*() {
    // Rows a previous holder published but did not delete: not again.
    const tails = yield* publisher.tails(app)
    let after = 0
    for (;;) {
      const rows = yield* store.outbox(app, after, page)
      if (rows.length === 0) break
      yield* store.published(rows.filter((row) => row.id <= tails[row.kind]).map((row) => row.id))
      after = rows[rows.length - 1]!.id
      if (rows.every((row) => row.id > tails[row.kind])) break
    }
    return yield* Effect.forever(Effect.gen(function*() {
      const rows = yield* store.outbox(app, 0, page)
      if (rows.length === 0) {
        yield* Queue.take(wake).pipe(Effect.timeoutOption("1 second"))
        return
      }
      const acked = yield* publisher.publish(app, rows)
      yield* store.published(acked)
      yield* Metric.update(outboxPublished, acked.length)
      // Some were refused: a moment before the next try (they are published again, still in order of id).
      if (acked.length < rows.length) yield* Effect.sleep("200 millis")
    }))
  })
