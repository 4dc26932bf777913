/**
 * CleanPublisher on JetStream: outbox rows to EVENTS_CLEAN (`events.clean.<app>`) and SESSIONS
 * (`sessions.<app>`), pipelined on one connection (order kept), `Nats-Msg-Id = <app>.<row id>` and the
 * row id in `Tributary-Outbox-Id`, which `tails` reads back from each subject's last message.
 */
import { headers as natsHeaders } from "@nats-io/transport-node"
import { JetStreamApiCodes } from "@nats-io/jetstream"
import { Effect, Layer } from "effect"
import { CleanOutboxError, CleanPublisher, type OutboxKind, type OutboxRow } from "../../domain/events/CleanOutbox.ts"
import { cleanEventsSubject, sessionsSubject, StreamNames } from "../../domain/subjects.ts"
import { isApiError } from "../nats/freshConsumer.ts"
import { Nats, tryNats } from "../nats/Nats.ts"

/** The header carrying a message's outbox row id. */
export const outboxIdHeader = "Tributary-Outbox-Id"

const encoder = new TextEncoder()
const streamOf = (kind: OutboxKind) => (kind === "clean" ? StreamNames.eventsClean : StreamNames.sessions)
const subjectOf = (kind: OutboxKind, app: string) => (kind === "clean" ? cleanEventsSubject(app) : sessionsSubject(app))

const make = Effect.gen(function*() {
  const { jetstream, manager } = yield* Nats

  const tail = (kind: OutboxKind, app: string) =>
    tryNats(`${kind} tail`, () => manager.streams.getMessage(streamOf(kind), { last_by_subj: subjectOf(kind, app) })).pipe(
      Effect.map((message) => Number(message?.header?.get(outboxIdHeader) ?? 0) || 0),
      Effect.catchIf((error) => isApiError(error.cause, JetStreamApiCodes.NoMessageFound), () => Effect.succeed(0)),
      Effect.mapError((error) => new CleanOutboxError({ operation: error.operation, cause: error.cause }))
    )

  const tails = (app: string) =>
    Effect.all({ clean: tail("clean", app), session: tail("session", app) }) as Effect.Effect<Record<OutboxKind, number>, CleanOutboxError>

  const publish = (app: string, rows: ReadonlyArray<OutboxRow>) =>
    Effect.gen(function*() {
      const settled = yield* Effect.promise(() =>
        Promise.allSettled(rows.map((row) => {
          const headers = natsHeaders()
          headers.set(outboxIdHeader, String(row.id))
          return jetstream.publish(subjectOf(row.kind, app), encoder.encode(row.body), { msgID: `${app}.${row.id}`, headers })
        })))
      const acked = rows.filter((_, i) => settled[i]!.status === "fulfilled").map((row) => row.id)
      const failed = settled.find((s) => s.status === "rejected")
      if (failed !== undefined && acked.length === 0) {
        return yield* new CleanOutboxError({ operation: "publish", cause: failed.reason })
      }
      return acked
    })

  return CleanPublisher.of({ tails, publish })
})

export const layerJetStream = Layer.effect(CleanPublisher, make)
