/**
 * CleanPublisher on JetStream: outbox rows to EVENTS_CLEAN (`events.clean.<app>`) and SESSIONS
 * (`sessions.<app>`), pipelined on one connection (order kept), `Nats-Msg-Id = <app>.<row id>` and the
 * row id in `Tributary-Outbox-Id`, which `seen` reads back from the subject's messages after a fence.
 */
import { headers as natsHeaders } from "@nats-io/transport-node"
import { Effect, Layer } from "effect"
import { CleanOutboxError, CleanPublisher, type OutboxKind, type OutboxRow, type PublishedRow } from "../../domain/events/CleanOutbox.ts"
import { cleanEventsSubject, sessionsSubject, StreamNames } from "../../domain/subjects.ts"
import { Nats, tryNats } from "../nats/Nats.ts"
import { scanSubject } from "../nats/scanSubject.ts"

/** The header carrying a message's outbox row id. */
export const outboxIdHeader = "Tributary-Outbox-Id"

const encoder = new TextEncoder()
const streamOf = (kind: OutboxKind) => (kind === "clean" ? StreamNames.eventsClean : StreamNames.sessions)
const subjectOf = (kind: OutboxKind, app: string) => (kind === "clean" ? cleanEventsSubject(app) : sessionsSubject(app))

const make = Effect.gen(function*() {
  const { jetstream, manager } = yield* Nats

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
      const settled = yield* Effect.promise(() =>
        Promise.allSettled(rows.map((row) => {
          const headers = natsHeaders()
          headers.set(outboxIdHeader, String(row.id))
          return jetstream.publish(subjectOf(row.kind, app), encoder.encode(row.body), { msgID: `${app}.${row.id}`, headers })
        })))
      const acked: Array<PublishedRow> = []
      settled.forEach((outcome, i) => {
        if (outcome.status === "fulfilled") acked.push({ id: rows[i]!.id, kind: rows[i]!.kind, seq: outcome.value.seq })
      })
      const failed = settled.find((s) => s.status === "rejected")
      if (failed !== undefined && acked.length === 0) {
        return yield* new CleanOutboxError({ operation: "publish", cause: failed.reason })
      }
      return acked
    })

  return CleanPublisher.of({ seen, publish })
})

export const layerJetStream = Layer.effect(CleanPublisher, make)
