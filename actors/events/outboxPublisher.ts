/**
 * Publishes an app's committed outbox (devices.db) to EVENTS_CLEAN and SESSIONS, oldest first, and
 * deletes each row once the server acknowledged it. On start it reads the last outbox id each subject
 * holds (infra/relay.ts's way) and deletes the rows at or below it without publishing them again: a
 * crash between publish and delete duplicates nothing, even beyond JetStream's duplicate window
 * (`Nats-Msg-Id = <app>.<row id>` covers the rest). Woken by each commit, and every second anyway.
 *
 * Published rows are not deleted in a transaction (an fsync) of their own: their ids go to `done`, which
 * the pipeline's next commit deletes, or this loop when it is idle. Meanwhile the loop reads on after
 * the last row it had published; a row left behind by a crash or a failed commit is found at or below
 * the tails at the next start and deleted unpublished.
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
  { done, publisher, store, wake }: {
    readonly store: DeviceStore["Service"]
    readonly publisher: CleanPublisher["Service"]
    readonly wake: Queue.Queue<void>
    /** ids published and not deleted yet (shared with the pipeline's commit) */
    readonly done: Array<number>
  }
) =>
  Effect.gen(function*() {
    // Rows a previous holder published but did not delete: not again.
    const tails = yield* publisher.tails(app)
    let scanned = 0
    for (;;) {
      const rows = yield* store.outbox(app, scanned, page)
      if (rows.length === 0) break
      yield* store.published(rows.filter((row) => row.id <= tails[row.kind]).map((row) => row.id))
      scanned = rows[rows.length - 1]!.id
      if (rows.every((row) => row.id > tails[row.kind])) break
    }
    /** every row at or below it was published */
    let after = 0
    /** rows published that `after` has not passed yet (a refused row before them holds it back) */
    const ahead = new Set<number>()
    return yield* Effect.forever(Effect.gen(function*() {
      const read = yield* store.outbox(app, after, page)
      if (read.length === 0) {
        if (done.length > 0) yield* Effect.suspend(() => store.published(done.splice(0)))
        yield* Queue.take(wake).pipe(Effect.timeoutOption("1 second"))
        return
      }
      const rows = read.filter((row) => !ahead.has(row.id))
      const acked = rows.length === 0 ? [] : yield* publisher.publish(app, rows)
      done.push(...acked)
      yield* Metric.update(outboxPublished, acked.length)
      for (const id of acked) ahead.add(id)
      let i = 0
      for (; i < read.length && ahead.has(read[i]!.id); i++) {
        after = read[i]!.id
        ahead.delete(after)
      }
      // Some were refused: a moment before the next try (they are published again, still in order of id).
      if (i < read.length) yield* Effect.sleep("200 millis")
    }))
  })
