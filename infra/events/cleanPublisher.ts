/**
 * CleanPublisher on JetStream: outbox rows to EVENTS_CLEAN (`events.clean.<app>`) and SESSIONS
 * (`sessions.<app>`), pipelined on one connection (order kept), `Nats-Msg-Id = <app>.<row id>` and the
 * row id in `Tributary-Outbox-Id`, which `seen` reads back from the subject's messages after a fence.
 * A round's rows go out through one AckedPublisher (infra/nats/ackedPublisher.ts): one reply
 * subscription for every acknowledgement rather than a `jetstream.publish` request each.
 */
import { Effect, Layer } from "effect"
import { checkedHeader } from "../../domain/checked.ts"
import { cleanBatchMark, sessionEndedMark } from "../../domain/events/CleanEvent.ts"
import { CleanOutboxError, CleanPublisher, type OutboxKind, type OutboxRow, type PublishedRow } from "../../domain/events/CleanOutbox.ts"
import { cleanEventsSubject, sessionsSubject, StreamNames } from "../../domain/subjects.ts"
import { makeAckedPublisher } from "../nats/ackedPublisher.ts"
import { Nats, tryNats } from "../nats/Nats.ts"
import { scanSubject } from "../nats/scanSubject.ts"

/** The header carrying a message's outbox row id. */
export const outboxIdHeader = "Tributary-Outbox-Id"

/** As nats.js's JetStream publish waits. */
const ackTimeoutMs = 5_000

/** The pipeline writes its rows from values it built to their schemas: the rollups take them as they are (domain/checked.ts). */
const markOf = (kind: OutboxKind) => (kind === "clean" ? cleanBatchMark : sessionEndedMark)
const streamOf = (kind: OutboxKind) => (kind === "clean" ? StreamNames.eventsClean : StreamNames.sessions)
const subjectOf = (kind: OutboxKind, app: string) => (kind === "clean" ? cleanEventsSubject(app) : sessionsSubject(app))

const make = Effect.gen(function*() {
  const { connection, jetstream, manager } = yield* Nats
  const publisher = yield* makeAckedPublisher(connection, ackTimeoutMs)

  const seen = (app: string, kind: OutboxKind, after: number) =>
    tryNats(`${kind} published rows`, async () => {
      const ids = new Set<number>()
      const last = await scanSubject({ jetstream, manager }, streamOf(kind), subjectOf(kind, app), { afterSeq: after }, (headers) => {
        const id = Number(headers?.get(outboxIdHeader))
        if (Number.isSafeInteger(id)) ids.add(id)
      })
      return { ids: ids as ReadonlySet<number>, last: last ?? after }
    }).pipe(Effect.mapError((error) => new CleanOutboxError({ operation: error.operation, cause: error.cause })))

  const publish = (app: string, rows: ReadonlyArray<OutboxRow>) =>
    Effect.gen(function*() {
      // every row at once, in one socket write; each awaited on its own acknowledgement
      const outcomes = yield* Effect.promise(() =>
        Promise.all(rows.map((row) =>
          publisher.publish(subjectOf(row.kind, app), row.body, { "Nats-Msg-Id": `${app}.${row.id}`, [outboxIdHeader]: String(row.id), [checkedHeader]: markOf(row.kind) })
            .then((stored) => stored.seq, (error: unknown) => error))))
      const acked: Array<PublishedRow> = []
      outcomes.forEach((outcome, i) => {
        if (typeof outcome === "number") acked.push({ id: rows[i]!.id, kind: rows[i]!.kind, seq: outcome })
      })
      const failed = outcomes.find((outcome) => typeof outcome !== "number")
      if (failed !== undefined && acked.length === 0) {
        return yield* new CleanOutboxError({ operation: "publish", cause: failed })
      }
      return acked
    })

  return CleanPublisher.of({ seen, publish })
})

export const layerJetStream = Layer.effect(CleanPublisher, make)
