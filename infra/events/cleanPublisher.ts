/**
 * CleanPublisher on JetStream: outbox rows to EVENTS_CLEAN (`events.clean.<app>`) and SESSIONS
 * (`sessions.<app>`), pipelined on one connection (order kept), `Nats-Msg-Id = <app>.<row id>` and the
 * row id in `Tributary-Outbox-Id`, which `seen` reads back from the subject's messages after a fence.
 */
import { DeliverPolicy, JetStreamApiCodes } from "@nats-io/jetstream"
import { headers as natsHeaders } from "@nats-io/transport-node"
import { Effect, Layer } from "effect"
import { CleanOutboxError, CleanPublisher, type OutboxKind, type OutboxRow, type PublishedRow } from "../../domain/events/CleanOutbox.ts"
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

  const seen = (app: string, kind: OutboxKind, after: number) =>
    tryNats(`${kind} published rows`, async () => {
      const ids = new Set<number>()
      const last = await manager.streams.getMessage(streamOf(kind), { last_by_subj: subjectOf(kind, app) })
        .catch((error: unknown) => isApiError(error, JetStreamApiCodes.NoMessageFound) ? null : Promise.reject(error))
      if (last === null || last.seq <= after) return { ids, last: after }
      const consumer = await jetstream.consumers.get(streamOf(kind), {
        // one subject as a string: nats-server 2.9 takes a single filter only
        filter_subjects: subjectOf(kind, app),
        ...(after === 0 ? { deliver_policy: DeliverPolicy.All } : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 }),
        headers_only: true
      })
      try {
        for (;;) {
          const batch = await consumer.fetch({ max_messages: 1_000, expires: 2_000 })
          let count = 0
          let reachedLast = false
          for await (const msg of batch) {
            count++
            const id = Number(msg.headers?.get(outboxIdHeader))
            if (Number.isSafeInteger(id)) ids.add(id)
            if (msg.seq >= last.seq) reachedLast = true
          }
          if (count === 0 || reachedLast) return { ids: ids as ReadonlySet<number>, last: last.seq }
        }
      } finally {
        await consumer.delete().catch(() => undefined)
      }
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
