/**
 * JetStream publishes by the hundred, each awaited on its own acknowledgement, without a request per
 * publish: one reply subscription (`<inbox>.*`) takes every acknowledgement, each publish names its
 * own token as reply subject, and one sweep a second fails those not answered within `timeoutMs`. A
 * `jetstream.publish` per message (an error built for its stack, a timer, a mux entry each) cost a fast
 * destination more than its HTTP request, and the device pipeline 8% of its CPU. Publishes made in one
 * synchronous stretch go out in one socket write (nats.js flushes its buffer once the stretch ends).
 * Used by the relay (HISTORY, SNAPSHOTS), the delivery ledger (receipts, dead letters) and the device
 * outbox (clean events, sessions).
 *
 * Same guarantees as `jetstream.publish`: resolved with the stream sequence once the stream stored the
 * message, or found it a duplicate of its `Nats-Msg-Id` (`duplicate`); rejected on a JetStream error
 * (such as a `Nats-Expected-Last-Sequence` the stream is not at), when no stream
 * listens (503), or when no acknowledgement came in time — the caller then does as after any failed
 * publish. The sweep gives up only after the I/O of the turn it falls in: when a long synchronous
 * stretch held the event loop past the timeout, acknowledgements that came meanwhile still count.
 */
import { createInbox, headers as makeHeaders } from "@nats-io/transport-node"
import type { Msg, NatsConnection } from "@nats-io/transport-node"
import { Effect, Option, Schema } from "effect"
import { decodeJson } from "../../domain/decodeJson.ts"

/** A stored publish: its stream sequence, and whether the stream had it already (the same `Nats-Msg-Id` within its duplicate window). */
export interface Stored {
  readonly seq: number
  readonly duplicate: boolean
}

export interface AckedPublisher {
  /** Publishes `data` on `subject` with `headers` (a `Nats-Msg-Id` among them, if any); resolves once stored. */
  readonly publish: (subject: string, data: string, headers: Readonly<Record<string, string>>) => Promise<Stored>
}

interface Waiting {
  readonly resolve: (stored: Stored) => void
  readonly reject: (error: Error) => void
  readonly sentAt: number
}

/** JetStream's answer to a publish: `{stream, seq, duplicate?}` once stored (or found a duplicate), else with `error`. */
const PubAck = Schema.Struct({ stream: Schema.String, seq: Schema.Int, duplicate: Schema.optionalKey(Schema.Boolean), error: Schema.optionalKey(Schema.Unknown) })
const decodeAck = decodeJson(PubAck)

/** What `msg` acknowledges, or why the publish was not stored. */
const acknowledged = (msg: Msg): Stored | Error => {
  if (msg.headers?.hasError) return new Error(`publish not stored: ${msg.headers.code} ${msg.headers.description}`)
  const text = msg.string()
  const ack = decodeAck(text)
  return Option.isSome(ack) && ack.value.error === undefined
    ? { seq: ack.value.seq, duplicate: ack.value.duplicate === true }
    : new Error(`publish not stored: ${text}`)
}

/** A publisher on `connection` for the life of the Scope (what is still awaited then fails). */
export const makeAckedPublisher = (connection: NatsConnection, timeoutMs = 10_000) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const prefix = createInbox()
      const waiting = new Map<string, Waiting>()
      let next = 0
      const subscription = connection.subscribe(`${prefix}.*`, {
        callback: (error, msg) => {
          if (error !== null) return
          const token = msg.subject.slice(prefix.length + 1)
          const waiter = waiting.get(token)
          if (waiter === undefined) return
          waiting.delete(token)
          const outcome = acknowledged(msg)
          if (outcome instanceof Error) waiter.reject(outcome)
          else waiter.resolve(outcome)
        }
      })
      // oldest first (a Map keeps insertion order): the sweep stops at the first one still in time
      const expire = () => {
        const late = Date.now() - timeoutMs
        for (const [token, waiter] of waiting) {
          if (waiter.sentAt > late) break
          waiting.delete(token)
          waiter.reject(new Error(`no acknowledgement within ${timeoutMs} ms`))
        }
      }
      // after this turn's I/O (setImmediate): acknowledgements already received are read first
      const sweep = setInterval(() => setImmediate(expire), 1_000)
      sweep.unref()
      const publisher: AckedPublisher = {
        publish: (subject, data, headers) =>
          new Promise<Stored>((resolve, reject) => {
            const token = (next++).toString(36)
            const natsHeaders = makeHeaders()
            for (const [name, value] of Object.entries(headers)) natsHeaders.set(name, value)
            waiting.set(token, { resolve, reject, sentAt: Date.now() })
            try {
              connection.publish(subject, data, { headers: natsHeaders, reply: `${prefix}.${token}` })
            } catch (error) {
              waiting.delete(token)
              reject(error instanceof Error ? error : new Error(String(error)))
            }
          })
      }
      const close = () => {
        clearInterval(sweep)
        subscription.unsubscribe()
        for (const waiter of waiting.values()) waiter.reject(new Error("publisher closed"))
        waiting.clear()
      }
      return { publisher, close }
    }),
    ({ close }) => Effect.sync(close)
  ).pipe(Effect.map(({ publisher }) => publisher))
