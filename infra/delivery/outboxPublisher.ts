/**
 * The outbox publisher: moves chunks from `delivery.db`'s outbox to DELIVER (`deliver.<destination>.<lane>`)
 * in the order they were written, each with `Nats-Msg-Id` = its chunk id, one at a time (an
 * acknowledgement awaited before the next publish, so a failed publish never lets a later chunk land
 * before it), and forgets a batch of rows once every chunk of it is acknowledged.
 *
 * Exactly once on DELIVER: a chunk leaves the outbox only after JetStream stored it. A crash between
 * the acknowledgement and the delete leaves published rows at the head of the outbox; on start the
 * publisher looks, as the relay does with HISTORY, at the last message of each subject those rows go
 * to and forgets the rows up to the newest one found there (publishing is in outbox order, so every
 * row before it was stored too). A chunk the deliverer already took off DELIVER cannot be seen so:
 * its re-publish carries the same chunk id, which JetStream drops within its duplicate window (2
 * minutes by default; a restart takes seconds). Beyond it the chunk is stored again: a continuous one
 * is skipped by its lane's watermark (domain/delivery/Watermark.ts: its positions and seq are at or
 * below what the lane settled), a refresh's too (the lane keeps the ids of as many refresh chunks as
 * one round here publishes). DELIVER refusing a chunk (full) stops the publisher with backoff; the
 * outbox on disk holds the backlog meanwhile.
 */
import { JetStreamApiCodes } from "@nats-io/jetstream"
import { Effect, Metric, Schedule } from "effect"
import type { Duration } from "effect"
import { StreamNames } from "../../domain/subjects.ts"
import { refreshesKept } from "../../domain/delivery/Watermark.ts"
import { isApiError } from "../nats/freshConsumer.ts"
import { Nats, tryNats } from "../nats/Nats.ts"
import { PackagesDb } from "./packagesDb.ts"

export const chunksPublished = Metric.counter("tributary_delivery_chunks_published_total", {
  description: "Package chunks published to DELIVER",
  incremental: true
})
export const outboxRecords = Metric.gauge("tributary_delivery_outbox_records", {
  description: "Records in package chunks written but not yet on DELIVER"
})

export interface PublisherOptions {
  /**
   * rows read per round; default `refreshesKept`: a crash re-publishes at most one round, and the
   * deliverers remember that many refresh chunks to skip them
   */
  readonly batch?: number
  /** how long to wait when the outbox is empty; default 25 ms */
  readonly idle?: Duration.Input
}

const publishRound = (batch: number) =>
  Effect.gen(function*() {
    const db = yield* PackagesDb
    const { jetstream } = yield* Nats
    const rows = yield* db.pending(batch)
    for (const row of rows) {
      yield* tryNats("publish to DELIVER", () => jetstream.publish(row.subject, row.chunk, { msgID: row.msgId }))
    }
    if (rows.length > 0) {
      yield* db.published(rows[rows.length - 1]!.id)
      yield* Metric.update(chunksPublished, rows.length)
    }
    return rows.length
  })

/** Forgets the head of the outbox that is on DELIVER already (a crash came between publish and delete). */
const skipPublished = (batch: number) =>
  Effect.gen(function*() {
    const db = yield* PackagesDb
    const { manager } = yield* Nats
    const rows = yield* db.pending(batch)
    let last = -1
    for (const subject of new Set(rows.map((row) => row.subject))) {
      const message = yield* tryNats("read DELIVER's tail", () => manager.streams.getMessage(StreamNames.deliver, { last_by_subj: subject })).pipe(
        Effect.catchIf((error) => isApiError(error.cause, JetStreamApiCodes.NoMessageFound), () => Effect.succeed(null))
      )
      const msgId = message?.header?.get("Nats-Msg-Id")
      const index = msgId === undefined ? -1 : rows.findIndex((row) => row.msgId === msgId)
      last = Math.max(last, index)
    }
    if (last >= 0) {
      yield* db.published(rows[last]!.id)
      yield* Effect.logInfo("package publisher: chunks already on DELIVER forgotten", { chunks: last + 1 })
    }
  })

/** Publishes the outbox until interrupted; failures are logged and retried with backoff. */
export const publishOutbox = (options: PublisherOptions = {}): Effect.Effect<never, never, PackagesDb | Nats> =>
  skipPublished(options.batch ?? refreshesKept).pipe(
    Effect.andThen(publishRound(options.batch ?? refreshesKept).pipe(
      Effect.tap((published) => published === 0 ? Effect.sleep(options.idle ?? "25 millis") : Effect.void),
      Effect.forever
    )),
    Effect.tapError((error) => Effect.logWarning("package publisher failed; retrying", error)),
    Effect.retry(Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")])),
    Effect.orDie
  )

/** Reports the outbox's backlog as a gauge, every `every`. */
export const reportBacklog = (every: Duration.Input) =>
  Effect.gen(function*() {
    const db = yield* PackagesDb
    const { records } = yield* db.backlog
    yield* Metric.update(outboxRecords, records)
  }).pipe(Effect.ignore, Effect.andThen(Effect.sleep(every)), Effect.forever)
