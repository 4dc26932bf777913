/**
 * The outbox publisher: moves chunks from `delivery.db`'s outbox to DELIVER (`deliver.<destination>.<lane>`)
 * destination by destination, each destination's in the order they were written, each with
 * `Nats-Msg-Id` = its chunk id, one at a time (an acknowledgement awaited before the next publish, so a
 * failed publish never lets a later chunk land before it), and forgets a batch of rows once every chunk
 * of it is acknowledged.
 *
 * The lane barrier (domain/delivery/laneBarrier.ts): a destination's chunks split for another lane
 * count than those it published last wait in the outbox until DELIVER holds none of that destination,
 * so a user's records split two ways never wait on DELIVER together, and at least `newSplitHoldMs`
 * from when this publisher first saw them, so every lane sends at its new share of the limit first.
 * The count published last is kept in delivery.db with the rows' delete, so a restart knows it. A
 * destination waiting costs the others nothing: each round reads every destination's own head of the
 * outbox.
 *
 * A deleted destination's chunks, and those stamped for an earlier incarnation, are dropped from the
 * outbox, never published: no deliverer takes them, so on DELIVER they would hold its barrier for ever.
 *
 * Exactly once on DELIVER: a chunk leaves the outbox only after JetStream stored it. A crash between
 * the acknowledgement and the delete leaves published rows at the head of a destination's outbox; on
 * start the publisher looks, as the relay does with HISTORY, at the last message of each subject those
 * rows go to and forgets the destination's rows up to the newest one found there (a destination's are
 * published in outbox order, so every row before it was stored too), keeping their lane count. A chunk the deliverer already took off DELIVER cannot be seen so:
 * its re-publish carries the same chunk id, which JetStream drops within its duplicate window (2
 * minutes by default; a restart takes seconds). Beyond it the chunk is stored again: a continuous one
 * is skipped by its lane's watermark (domain/delivery/Watermark.ts: its positions and seq are at or
 * below what the lane settled), a refresh's too (the lane keeps the ids of as many refresh chunks as
 * one destination's round here publishes).
 *
 * DELIVER is bounded (infra/nats/topology.ts): in chunks per lane, so that a destination that is down
 * or slow cannot take the room of the others, and in bytes (kept here: infra/nats/streamBytes.ts). A lane full refuses that destination's
 * next chunk: its chunks wait in the outbox while the other destinations' go on, and it is tried again
 * 200 ms later. DELIVER full stops the round until a second later. Either way the outbox on disk holds the backlog meanwhile; nothing
 * is dropped and a destination's chunks stay in order.
 */
import { Clock, Effect, Metric, Option, Schedule } from "effect"
import type { Duration } from "effect"
import { DeliveryBacklog } from "../../domain/delivery/DeliveryBacklog.ts"
import { lanesAfter, newSplitHoldMs, publishable } from "../../domain/delivery/laneBarrier.ts"
import { StreamNames } from "../../domain/subjects.ts"
import { refreshesKept } from "../../domain/delivery/Watermark.ts"
import { Nats, tryNats } from "../nats/Nats.ts"
import { lastOnSubject } from "../nats/scanSubject.ts"
import { makeStreamBytes, messageBytes, type StreamBytes } from "../nats/streamBytes.ts"
import { streamFull, type StreamFull } from "../nats/streamFull.ts"
import { PackagesDb } from "./packagesDb.ts"

export const chunksPublished = Metric.counter("tributary_delivery_chunks_published_total", {
  description: "Package chunks published to DELIVER",
  incremental: true
})
export const outboxRecords = Metric.gauge("tributary_delivery_outbox_records", {
  description: "Records in package chunks written but not yet on DELIVER"
})

export const laneBarriers = Metric.gauge("tributary_delivery_lane_barriers", {
  description: "Destinations whose chunks of a new lane count wait for DELIVER to drain the previous count's"
})

export interface PublisherOptions {
  /**
   * rows read per destination and round; default `refreshesKept`: a crash re-publishes at most one
   * destination's round, and the deliverers remember that many refresh chunks to skip them
   */
  readonly batch?: number
  /** how long to wait when the outbox is empty; default 25 ms */
  readonly idle?: Duration.Input
  /** how long at least a new split waits after it was first seen, ms; default `newSplitHoldMs` */
  readonly newSplitHold?: number
}

/**
 * How long a destination whose lane was full waits before its next try: a lane drains as its deliverer
 * sends, and a second (as before the outside attack of stop 21) held a small lane to a lane's worth of
 * chunks a second, whatever the destination's rate.
 */
const laneFullRetryMs = 200

/** How long the publisher waits when DELIVER as a whole is full. */
const streamFullRetryMs = 1_000

/** A chunk stamped for an earlier incarnation than the destination's now: no deliverer takes it. */
const isStale = (stamped: number | undefined, now: number | undefined) => stamped !== undefined && now !== undefined && stamped < now

/**
 * One round: each destination's publishable head of the outbox. `waiting` holds, per destination held at
 * a lane barrier, since when (epoch ms); once it has waited `holdMs`, each round asks DELIVER once
 * whether it drained, without reading the waiting chunks.
 */
const publishRound = (batch: number, holdMs: number, waiting: Map<string, number>, refused: Map<string, number>, deliverBytes: StreamBytes) =>
  Effect.gen(function*() {
    const db = yield* PackagesDb
    const { jetstream } = yield* Nats
    const backlog = yield* DeliveryBacklog
    const destinations = yield* db.destinations
    let total = 0
    let full = false
    for (const { deleted, destination, incarnation, nextLanes, publishedLanes } of destinations) {
      if (deleted) {
        waiting.delete(destination)
        const dropped = yield* db.drop(destination)
        yield* Effect.logInfo("package publisher: a deleted destination's chunks dropped from the outbox", { destination, ...dropped })
        continue
      }
      const changed = nextLanes !== undefined && nextLanes !== publishedLanes
      if (changed) {
        const now = yield* Clock.currentTimeMillis
        // a count never published before (a new destination) has no lanes at other shares to wait for
        const hold = publishedLanes === undefined ? 0 : holdMs
        const since = waiting.get(destination) ?? now
        const ready = now - since >= hold && !(yield* backlog.lanesWaiting(destination)).has(destination)
        if (!ready) {
          if (!waiting.has(destination)) {
            waiting.set(destination, since)
            yield* Effect.logInfo("package publisher: a destination's lanes changed; its new split waits until every lane has its new share and DELIVER holds none of the old", {
              destination, from: publishedLanes, to: nextLanes
            })
          }
          continue
        }
        if (waiting.delete(destination)) {
          yield* Effect.logInfo("package publisher: a destination's old split is delivered; its new split goes on", {
            destination, from: publishedLanes, to: nextLanes, waitedMs: now - since
          })
        }
      }
      const rows = yield* db.pending(destination, batch)
      const fresh = rows.findIndex((row) => !isStale(row.incarnation, incarnation))
      const stale = fresh === -1 ? rows.length : fresh
      if (stale > 0) {
        yield* db.published(destination, rows[stale - 1]!.id, undefined)
        yield* Effect.logInfo("package publisher: an earlier incarnation's chunks dropped from the outbox", { destination, incarnation, chunks: stale })
        continue
      }
      const refusedAt = refused.get(destination)
      if (refusedAt !== undefined && (yield* Clock.currentTimeMillis) - refusedAt < laneFullRetryMs) continue
      const sending = rows.slice(0, publishable(rows.map((row) => row.lanes), publishedLanes, changed).chunks)
      let sent = 0
      let refusal: StreamFull | undefined
      for (const row of sending) {
        const published = tryNats("publish to DELIVER", () => jetstream.publish(row.subject, row.chunk, { msgID: row.msgId })).pipe(
          Effect.as(undefined),
          Effect.catch((error) => {
            const full = streamFull(error.cause)
            return full === undefined ? Effect.fail(error) : Effect.succeed(full)
          })
        )
        refusal = Option.getOrElse(yield* deliverBytes.admit(messageBytes(row.chunk, row.subject, row.msgId), published), (): StreamFull => "stream full")
        if (refusal !== undefined) break
        sent++
      }
      if (sent > 0) yield* db.published(destination, sending[sent - 1]!.id, lanesAfter(sending.slice(0, sent).map((row) => row.lanes), publishedLanes))
      total += sent
      if (refusal === undefined) {
        if (sent > 0 && refused.delete(destination)) yield* Effect.logInfo("package publisher: DELIVER takes the destination's chunks again", { destination })
        continue
      }
      if (refusedAt === undefined) {
        yield* Effect.logWarning("package publisher: DELIVER refused a chunk; the destination's chunks wait in the outbox", { destination, reason: refusal })
      }
      refused.set(destination, yield* Clock.currentTimeMillis)
      if (refusal === "stream full") {
        full = true
        break
      }
    }
    for (const known of [waiting, refused]) {
      for (const destination of known.keys()) if (!destinations.some((d) => d.destination === destination)) known.delete(destination)
    }
    yield* Metric.update(laneBarriers, waiting.size)
    yield* Metric.update(chunksPublished, total)
    return { total, full }
  })

/** Forgets each destination's head of the outbox that is on DELIVER already (a crash came between publish and delete). */
const skipPublished = (batch: number) =>
  Effect.gen(function*() {
    const db = yield* PackagesDb
    const { manager } = yield* Nats
    for (const { destination, publishedLanes } of yield* db.destinations) {
      const rows = yield* db.pending(destination, batch)
      let last = -1
      for (const subject of new Set(rows.map((row) => row.subject))) {
        const message = yield* tryNats("read DELIVER's tail", () => lastOnSubject(manager, StreamNames.deliver, subject))
        const msgId = message?.header?.get("Nats-Msg-Id")
        const index = msgId === undefined ? -1 : rows.findIndex((row) => row.msgId === msgId)
        last = Math.max(last, index)
      }
      if (last >= 0) {
        yield* db.published(destination, rows[last]!.id, lanesAfter(rows.slice(0, last + 1).map((row) => row.lanes), publishedLanes))
        yield* Effect.logInfo("package publisher: chunks already on DELIVER forgotten", { destination, chunks: last + 1 })
      }
    }
  })

/** Publishes the outbox until interrupted; failures are logged and retried with backoff. */
export const publishOutbox = (options: PublisherOptions = {}): Effect.Effect<never, never, PackagesDb | Nats | DeliveryBacklog> =>
  Effect.gen(function*() {
    const batch = options.batch ?? refreshesKept
    yield* skipPublished(batch)
    const waiting = new Map<string, number>()
    /** destinations whose last chunk DELIVER refused, and when: logged once until it takes one again */
    const refused = new Map<string, number>()
    // published by the holder of the package publisher's lease alone
    const deliverBytes = yield* makeStreamBytes(StreamNames.deliver, { onePublisher: true })
    return yield* publishRound(batch, options.newSplitHold ?? newSplitHoldMs, waiting, refused, deliverBytes).pipe(
      Effect.tap(({ total, full }) => full ? Effect.sleep(streamFullRetryMs) : total === 0 ? Effect.sleep(options.idle ?? "25 millis") : Effect.void),
      Effect.forever
    )
  }).pipe(
    Effect.tapError((error) => Effect.logWarning("package publisher failed; retrying", error)),
    Effect.retry(Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")])),
    Effect.orDie
  )

/**
 * Drops, every `every`, what waits on DELIVER for destinations packaging saw deleted: chunks published as
 * their destination was deleted, after its delete's drop had taken its bounds (no deliverer takes them, so
 * they held DELIVER's room for good: the second re-attack of stop 29 filled a 64 MiB DELIVER with 981 of
 * them by creating and deleting destinations). Only what was stored before the look: a destination created
 * again meanwhile keeps its new chunks.
 */
export const sweepDeleted = (every: Duration.Input) =>
  Effect.gen(function*() {
    const db = yield* PackagesDb
    const backlog = yield* DeliveryBacklog
    const before = yield* backlog.nextSequence
    for (const destination of (yield* backlog.lanesWaiting()).keys()) {
      if (!(yield* db.deleted(destination))) continue
      const purged = yield* backlog.purge(destination, before)
      if (purged > 0) yield* Effect.logInfo("package publisher: a deleted destination's chunks dropped from DELIVER", { destination, chunks: purged })
    }
  }).pipe(Effect.ignore, Effect.andThen(Effect.sleep(every)), Effect.forever)

/** Reports the outbox's backlog as a gauge, every `every`. */
export const reportBacklog = (every: Duration.Input) =>
  Effect.gen(function*() {
    const db = yield* PackagesDb
    const { records } = yield* db.backlog
    yield* Metric.update(outboxRecords, records)
  }).pipe(Effect.ignore, Effect.andThen(Effect.sleep(every)), Effect.forever)
