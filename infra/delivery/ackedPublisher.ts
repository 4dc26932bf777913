/**
 * JetStream publishes by the hundred, each awaited on its own acknowledgement, without a request per
 * publish: one reply subscription (`<inbox>.*`) takes every acknowledgement, each publish names its
 * own token as reply subject, and one sweep a second fails those not answered within `timeoutMs`. A
 * request per receipt (an error built for its stack, a timer, a mux entry each) cost a fast
 * destination more than its HTTP request. The publishes asked for in one round of the event loop go
 * out together at its end (one socket write for all).
 *
 * Same guarantees as `jetstream.publish`: resolved only once the stream stored the message (or
 * dropped it as a duplicate of its `Nats-Msg-Id`); rejected on a JetStream error, when no stream
 * listens (503), or when no acknowledgement came in time — the caller then does as after any failed
 * publish (the deliverer's lane starts again and sends what has no receipt).
 */
import { createInbox, headers as natsHeaders } from "@nats-io/transport-node"
import type { Msg, NatsConnection } from "@nats-io/transport-node"
import { Effect } from "effect"

export interface AckedPublisher {
  /** Publishes `data` on `subject` with `msgId` as its `Nats-Msg-Id`; resolves once stored. */
  readonly publish: (subject: string, data: string, msgId: string) => Promise<void>
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
      const round: Array<{ readonly subject: string; readonly data: string; readonly msgId: string; readonly waiter: Waiting }> = []
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
      const sendRound = () => {
        const now = Date.now()
        for (const { data, msgId, subject, waiter } of round.splice(0)) {
          const token = (next++).toString(36)
          const headers = natsHeaders()
          headers.set("Nats-Msg-Id", msgId)
          waiting.set(token, { ...waiter, sentAt: now })
          try {
            connection.publish(subject, data, { headers, reply: `${prefix}.${token}` })
          } catch (error) {
            waiting.delete(token)
            waiter.reject(error instanceof Error ? error : new Error(String(error)))
          }
        }
      }
      const publisher: AckedPublisher = {
        publish: (subject, data, msgId) =>
          new Promise<void>((resolve, reject) => {
            if (round.push({ subject, data, msgId, waiter: { resolve, reject, sentAt: 0 } }) === 1) setImmediate(sendRound)
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
