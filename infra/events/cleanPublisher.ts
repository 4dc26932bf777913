/**
 * CleanPublisher on JetStream: outbox rows to EVENTS_CLEAN (`events.clean.<app>`) and SESSIONS
 * (`sessions.<app>`), pipelined on one connection (order kept), `Nats-Msg-Id = <app>.<row id>` and the
 * row id in `Tributary-Outbox-Id`, which `seen` reads back from the subject's messages after a fence.
 * (infra/delivery/ackedPublisher.ts does the same for single publishes awaited one by one.)
 */
import { createInbox, headers as natsHeaders } from "@nats-io/transport-node"
import type { Msg } from "@nats-io/transport-node"
import { Effect, Layer, Option, Schema } from "effect"
import { CleanOutboxError, CleanPublisher, type OutboxKind, type OutboxRow, type PublishedRow } from "../../domain/events/CleanOutbox.ts"
import { cleanEventsSubject, sessionsSubject, StreamNames } from "../../domain/subjects.ts"
import { Nats, tryNats } from "../nats/Nats.ts"
import { scanSubject } from "../nats/scanSubject.ts"

/** The header carrying a message's outbox row id. */
export const outboxIdHeader = "Tributary-Outbox-Id"

/** As nats.js's JetStream publish waits. */
const ackTimeoutMs = 5_000
const noAnswer = new Error(`no acknowledgement within ${ackTimeoutMs} ms`)

/** JetStream's answer to a publish: `{stream, seq}` once stored (or found a duplicate of its Nats-Msg-Id), else with `error`. */
const PubAck = Schema.Struct({ stream: Schema.String, seq: Schema.Int, error: Schema.optionalKey(Schema.Unknown) })
const decodeAck = Schema.decodeUnknownOption(Schema.fromJsonString(PubAck))

/** The stream sequence `msg` acknowledges, or why the publish was not stored. */
const acknowledged = (msg: Msg): number | Error => {
  if (msg.headers?.hasError) return new Error(`publish not stored: ${msg.headers.code} ${msg.headers.description}`)
  const text = msg.string()
  const ack = decodeAck(text)
  return Option.isSome(ack) && ack.value.error === undefined ? ack.value.seq : new Error(`publish not stored: ${text}`)
}

const streamOf = (kind: OutboxKind) => (kind === "clean" ? StreamNames.eventsClean : StreamNames.sessions)
const subjectOf = (kind: OutboxKind, app: string) => (kind === "clean" ? cleanEventsSubject(app) : sessionsSubject(app))

const make = Effect.gen(function*() {
  const { connection, jetstream, manager } = yield* Nats

  const seen = (app: string, kind: OutboxKind, after: number) =>
    tryNats(`${kind} published rows`, async () => {
      const ids = new Set<number>()
      const last = await scanSubject({ jetstream, manager }, streamOf(kind), subjectOf(kind, app), { afterSeq: after }, (headers) => {
        const id = Number(headers?.get(outboxIdHeader))
        if (Number.isSafeInteger(id)) ids.add(id)
      })
      return { ids: ids as ReadonlySet<number>, last: last ?? after }
    }).pipe(Effect.mapError((error) => new CleanOutboxError({ operation: error.operation, cause: error.cause })))

  /**
   * One round: every row published at once, each naming its own reply subject on one subscription
   * (`<inbox>.<index>`), rather than a `jetstream.publish` each (nats.js builds an error for its stack, a
   * timer and a mux entry per request: 8% of the pipeline's CPU). Resolves once every row is answered or
   * `ackTimeoutMs` passed; a row without an acknowledgement by then counts as failed, as a timed-out
   * `jetstream.publish` did.
   */
  const round = (app: string, rows: ReadonlyArray<OutboxRow>) =>
    new Promise<Array<number | unknown>>((resolve) => {
      const inbox = createInbox()
      const outcomes: Array<number | unknown> = rows.map(() => noAnswer)
      let waiting = rows.length
      let finished = false
      const finish = () => {
        if (finished) return
        finished = true
        clearTimeout(timer)
        subscription.unsubscribe()
        resolve(outcomes)
      }
      const subscription = connection.subscribe(`${inbox}.*`, {
        callback: (error, msg) => {
          if (error !== null) return
          const i = Number(msg.subject.slice(inbox.length + 1))
          if (outcomes[i] !== noAnswer) return
          outcomes[i] = acknowledged(msg)
          if (--waiting === 0) finish()
        }
      })
      // Given up after the I/O of the turn it falls in (setImmediate): when a long batch held the event
      // loop past the timeout, the acknowledgements that came meanwhile are read first and still count.
      const timer = setTimeout(() => setImmediate(finish), ackTimeoutMs)
      rows.forEach((row, i) => {
        const headers = natsHeaders()
        headers.set("Nats-Msg-Id", `${app}.${row.id}`)
        headers.set(outboxIdHeader, String(row.id))
        try {
          connection.publish(subjectOf(row.kind, app), row.body, { headers, reply: `${inbox}.${i}` })
        } catch (error) {
          outcomes[i] = error
          waiting--
        }
      })
      if (waiting === 0) finish()
    })

  const publish = (app: string, rows: ReadonlyArray<OutboxRow>) =>
    Effect.gen(function*() {
      const outcomes = yield* Effect.promise(() => round(app, rows))
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
