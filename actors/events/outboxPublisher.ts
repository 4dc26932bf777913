/**
 * Publishes an app's committed outbox (devices.db) to EVENTS_CLEAN and SESSIONS, oldest first, and
 * deletes each row once the server acknowledged it. Woken by each commit, and every second anyway.
 *
 * Published rows are not deleted in a transaction (an fsync) of their own: they go to `done`, which
 * the pipeline's next commit deletes (raising each subject's fence to the highest stream sequence among
 * them), or this loop when it is idle. Meanwhile the loop reads on after the last row it had published.
 *
 * On start, rows a previous holder published but did not delete (it crashed first) are told apart from
 * rows it never published by what each subject holds after its fence (CleanOutbox.ts): the former are
 * deleted without a second publish — even beyond JetStream's duplicate window — and the rest, a row
 * whose publish failed while a later one's succeeded included, are published. (`Nats-Msg-Id =
 * <app>.<row id>` also drops a repeat within the window.)
 */
import { Effect, Metric, Queue } from "effect"
import { type CleanPublisher, type OutboxKind, type PublishedRow, settled } from "../../domain/events/CleanOutbox.ts"
import type { DeviceStore } from "../../domain/events/DeviceStore.ts"

export const outboxPublished = Metric.counter("tributary_device_outbox_published_total", {
  description: "Messages published to EVENTS_CLEAN (batches of clean events) and SESSIONS (ended sessions)",
  incremental: true
})

/**
 * Rows a round at most, and characters of their bodies (a clean row is a CleanBatch of up to 256 KiB):
 * what one round holds in memory and sends. Above the server's max payload (8 MB), so that a row it
 * refuses for its size never fills a round alone and holds back the rows after it.
 */
const page = 2_000
const pageChars = 16 * 1024 * 1024
const kinds: ReadonlyArray<OutboxKind> = ["clean", "session"]

export const publishOutbox = (
  app: string,
  { done, onPublished = Effect.void, publisher, store, wake }: {
    readonly store: DeviceStore["Service"]
    readonly publisher: CleanPublisher["Service"]
    readonly wake: Queue.Queue<void>
    /** rows published and not deleted yet (shared with the pipeline's commit) */
    readonly done: Array<PublishedRow>
    /** run after a round that published a row (the pipeline's watchdog: progress) */
    readonly onPublished?: Effect.Effect<void>
  }
) =>
  Effect.gen(function*() {
    // Rows a previous holder published but did not delete: not again. Their ids are this app's rows
    // (only its publisher writes its subjects); deleting an id already gone is nothing.
    const fences = yield* store.fences(app)
    for (const kind of kinds) {
      const { ids, last } = yield* publisher.seen(app, kind, fences[kind] ?? 0)
      yield* store.published(app, { ids: [...ids], fences: { [kind]: last } })
    }
    /** every row at or below it was published */
    let after = 0
    /** rows published that `after` has not passed yet (a refused row before them holds it back) */
    const ahead = new Set<number>()
    return yield* Effect.forever(Effect.gen(function*() {
      const read = yield* store.outbox(app, after, page, pageChars)
      if (read.length === 0) {
        if (done.length > 0) yield* Effect.suspend(() => store.published(app, settled(done.splice(0))))
        yield* Queue.take(wake).pipe(Effect.timeoutOption("1 second"))
        return
      }
      const rows = read.filter((row) => !ahead.has(row.id))
      const acked = rows.length === 0 ? [] : yield* publisher.publish(app, rows)
      done.push(...acked)
      yield* Metric.update(outboxPublished, acked.length)
      if (acked.length > 0) yield* onPublished
      for (const row of acked) ahead.add(row.id)
      let i = 0
      for (; i < read.length && ahead.has(read[i]!.id); i++) {
        after = read[i]!.id
        ahead.delete(after)
      }
      // Some were refused: a moment before the next try (they are published again, still in order of id).
      if (i < read.length) yield* Effect.sleep("200 millis")
    }))
  })
