/**
 * JetStream publishes by the hundred, each awaited on its own acknowledgement, without a request per
 * publish: one reply subscription (`<inbox>.*`) takes every acknowledgement, each publish names its
 * own token as reply subject, and one sweep a second fails those not answered within `timeoutMs`. A
 * request per receipt (an error built for its stack, a timer, a mux entry each) cost a fast
 * destination more than its HTTP request. Publishes made in one synchronous stretch go out in one
 * socket write (nats.js flushes its buffer once the stretch ends).
 *
 * Same guarantees as `jetstream.publish`: resolved only once the stream stored the message (or
 * dropped it as a duplicate of its `Nats-Msg-Id`); rejected on a JetStream error, when no stream
 * listens (503), or when no acknowledgement came in time — the caller then does as after any failed
 * publish (the deliverer's lane starts again and sends what has no receipt).
 */
import { createInbox, headers as makeHeaders } from "@nats-io/transport-node"
import type { Msg, NatsConnection } from "@nats-io/transport-node"
import { Effect } from "effect"

export interface AckedPublisher {
  /** Publishes `data` on `subject` with `headers` (a `Nats-Msg-Id` among them, if any); resolves once stored. */
  readonly publish: (subject: string, data: string, headers: Readonly<Record<string, string>>) => Promise<void>
}

interface Waiting {
  readonly resolve: () => void
  readonly reject: (error: Error) => void
  readonly sentAt: number
}

/** Fails unless `msg` is a JetStream PubAck (`{stream, seq}`). */
const ackError = (msg: Msg): Error | undefined => {
  if (msg.headers?.hasError) return new Error(`publish not stored: ${msg.headers.code} ${msg.headers.description}`)
  try {
    const ack = JSON.parse(msg.string()) as { readonly stream?: unknown; readonly error?: { readonly code?: number; readonly description?: string } }
    if (ack.error !== undefined) return new Error(`publish not stored: ${ack.error.code} ${ack.error.description}`)
    return typeof ack.stream === "string" && ack.stream !== "" ? undefined : new Error("invalid publish acknowledgement")
  } catch (cause) {
    return new Error("invalid publish acknowledgement", { cause })
  }
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
          const failed = ackError(msg)
          if (failed === undefined) waiter.resolve()
          else waiter.reject(failed)
        }
      })
      // oldest first (a Map keeps insertion order): the sweep stops at the first one still in time
      const sweep = setInterval(() => {
        const late = Date.now() - timeoutMs
        for (const [token, waiter] of waiting) {
          if (waiter.sentAt > late) break
          waiting.delete(token)
          waiter.reject(new Error(`no acknowledgement within ${timeoutMs} ms`))
        }
      }, 1_000)
      sweep.unref()
      const publisher: AckedPublisher = {
        publish: (subject, data, headers) =>
          new Promise<void>((resolve, reject) => {
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
