/**
 * HISTORY and SNAPSHOTS as the relay writes them: where each ends, and a batch published to both with
 * every publish fenced by the sequence the stream must be at (see publishBatch).
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream"
import { Effect } from "effect"
import type { EventEnvelope } from "../domain/envelope.ts"
import type { EntitySnapshot } from "../domain/snapshot.ts"
import { historySubject, snapshotSubject, StreamNames } from "../domain/subjects.ts"
import type { AckedPublisher, Stored } from "./nats/ackedPublisher.ts"
import { Nats, NatsError, tryNats } from "./nats/Nats.ts"

/** Header names on HISTORY messages (DESIGN.md, Contracts); `Nats-Msg-Id` is set through `msgID`. */
export const RelayHeaders = {
  revision: "Tributary-Revision",
  position: "Tributary-Position",
  traceId: "Tributary-Trace-Id"
} as const

/**
 * Where HISTORY ends: its last sequence and the store position of its last event (0 when HISTORY is
 * empty; `known` false when it holds messages but the last one is gone or carries no position).
 */
export const historyTail = Effect.gen(function*() {
  const { manager } = yield* Nats
  const info = yield* tryNats("history info", () => manager.streams.info(StreamNames.history))
  const lastSeq = info.state.last_seq
  if (lastSeq === 0) return { lastSeq, position: 0, known: true }
  // The last message may be gone (max_age, purge): then the checkpoint alone says where to resume.
  // Any other failure must stop the start: resuming from the checkpoint alone could duplicate.
  const last = yield* tryNats("history tail", () => manager.streams.getMessage(StreamNames.history, { seq: lastSeq })).pipe(
    Effect.catchIf(
      (error) => error.cause instanceof JetStreamApiError && error.cause.code === JetStreamApiCodes.NoMessageFound,
      () => Effect.succeed(null)
    )
  )
  const position = Number(last?.header.get(RelayHeaders.position) ?? NaN)
  const known = Number.isSafeInteger(position) && position > 0
  return { lastSeq, position: known ? position : 0, known }
})

/** The revision SNAPSHOTS holds for an entity; -1 when it holds none. */
export const snapshotRevision = (snapshot: EntitySnapshot) =>
  Effect.gen(function*() {
    const { manager } = yield* Nats
    const message = yield* tryNats("snapshot tail", () =>
      manager.streams.getMessage(StreamNames.snapshots, { last_by_subj: snapshotSubject(snapshot.type, snapshot.id) })).pipe(
        Effect.catchIf(
          (error) => error.cause instanceof JetStreamApiError && error.cause.code === JetStreamApiCodes.NoMessageFound,
          () => Effect.succeed(null)
        )
      )
    return message === null ? -1 : (message.json<EntitySnapshot>().revision ?? -1)
  })

export interface Outgoing {
  readonly history: ReadonlyArray<EventEnvelope>
  readonly snapshots: ReadonlyArray<{ readonly snapshot: EntitySnapshot; readonly eventId: string }>
}

/**
 * Publishes in order without waiting in between (one socket write for the batch); then awaits every
 * acknowledgement (all settle). Through the acked publisher: a `jetstream.publish` per event (an error
 * built for its stack, a timer and a reply entry each) was 40% of the relay's CPU.
 */
const publishAll = (publishes: ReadonlyArray<() => Promise<Stored>>) =>
  Effect.gen(function*() {
    // allSettled: every promise gets a handler, so one failure leaves no unhandled rejection behind.
    const settled = yield* Effect.promise(() => Promise.allSettled(publishes.map((publish) => publish())))
    const failed = settled.find((s) => s.status === "rejected")
    if (failed !== undefined) return yield* new NatsError({ operation: "publish batch", cause: failed.reason })
    return settled.map((s) => (s as PromiseFulfilledResult<Stored>).value)
  })

/** The last sequences of HISTORY and SNAPSHOTS as this relay left them: what its next publishes expect. */
export interface Tails {
  readonly history: number
  readonly snapshots: number
}

/** JetStream's header for "store only if the stream's last sequence is this one" (nats.js omits it for 0). */
const expectedLastSequence = "Nats-Expected-Last-Sequence"

/**
 * Publishes a batch's events to HISTORY, then — only once HISTORY took them all — the entities' new
 * states to SNAPSHOTS: a batch HISTORY refused (another relay got there first) publishes no snapshot.
 * Snapshots are fenced the same way: each expects SNAPSHOTS' last sequence to be the one this relay
 * left, so a relay paused between the two (SIGSTOP, a long GC) whose lease another took meanwhile
 * cannot put back an older state over the newer one the other published: its publish is refused and
 * it restarts from a fresh read (or stops, its lease lost). Returns both tails afterwards.
 */
export const publishBatch = (publisher: AckedPublisher, outgoing: Outgoing, tails: Tails) =>
  Effect.gen(function*() {
    const lastSeq = tails.history
    const historyAcks = yield* publishAll(outgoing.history.map((envelope, i) => () => {
      const expected = lastSeq + i
      return publisher.publish(historySubject(envelope.entityType, envelope.entityId), JSON.stringify(envelope), {
        "Nats-Msg-Id": envelope.eventId,
        [RelayHeaders.revision]: String(envelope.revision),
        [RelayHeaders.position]: String(envelope.position),
        [RelayHeaders.traceId]: envelope.correlationId,
        // 0 means "no expectation" to the server: on an empty stream the first publish is unchecked.
        ...(expected > 0 ? { [expectedLastSequence]: String(expected) } : {})
      })
    }))
    if (historyAcks.some((ack) => ack.duplicate)) {
      // Only possible if HISTORY and the checkpoint disagree; restarting re-reads both.
      return yield* new NatsError({ operation: "publish batch", cause: "HISTORY reported a duplicate; resynchronising" })
    }
    const snapshotAcks = yield* publishAll(outgoing.snapshots.map(({ eventId, snapshot }, i) => () =>
      // also on an empty stream ("0"): then nothing may have been published since this relay read it
      publisher.publish(snapshotSubject(snapshot.type, snapshot.id), JSON.stringify(snapshot), {
        "Nats-Msg-Id": eventId,
        [expectedLastSequence]: String(tails.snapshots + i)
      })))
    if (snapshotAcks.some((ack) => ack.duplicate)) {
      // a duplicate does not move the stream's last sequence, so the expectations after it are off
      return yield* new NatsError({ operation: "publish batch", cause: "SNAPSHOTS reported a duplicate; resynchronising" })
    }
    return {
      history: historyAcks.length > 0 ? historyAcks[historyAcks.length - 1]!.seq : lastSeq,
      snapshots: snapshotAcks.length > 0 ? snapshotAcks[snapshotAcks.length - 1]!.seq : tails.snapshots
    }
  })

/** SNAPSHOTS' last sequence (0 when nothing was ever published to it). */
export const snapshotsTail = Effect.gen(function*() {
  const { manager } = yield* Nats
  const info = yield* tryNats("snapshots info", () => manager.streams.info(StreamNames.snapshots))
  return info.state.last_seq
})
