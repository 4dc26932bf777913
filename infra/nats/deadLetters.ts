/**
 * The DEADLETTERS stream: where the bus puts a message it cannot handle, once, before it removes the
 * message from its own stream (so it is neither redelivered for ever nor dropped unseen). Each dead
 * letter is one JSON message (domain/DeadLetters.ts DeadLetterRecord) on `deadletter.<stream>.<reason>`,
 * published with `Nats-Msg-Id = <stream>:<sequence>` so writing the same message twice (two processes,
 * a retry) keeps one; it is counted in `tributary_dead_letters_total{reason}` and logged only then.
 */
import type { JsMsg } from "@nats-io/jetstream"
import type { MsgHdrs } from "@nats-io/transport-node"
import { Clock, Effect, Layer, Metric, Option } from "effect"
import { DeadLetter, type DeadLetterReason, type DeadLetterRecord, DeadLetters, DeadLettersError } from "../../domain/DeadLetters.ts"
import { deadLetterSubject, StreamNames } from "../../domain/subjects.ts"
import { Nats, type NatsError, tryNats } from "./Nats.ts"

/** Bytes of the original payload a dead letter keeps: enough to see what it was, bounded however large it was. */
export const maxPayloadKept = 65_536

export const deadLettersTotal = Metric.counter("tributary_dead_letters_total", {
  description: "messages the bus could not handle, written to DEADLETTERS, by reason",
  incremental: true
})

/** A message the bus gives up on. */
export interface Undeliverable {
  readonly reason: DeadLetterReason
  readonly detail: string
  readonly stream: string
  readonly subject: string
  readonly streamSequence: number
  readonly deliveries: number
  readonly headers: MsgHdrs | undefined
  readonly data: Uint8Array
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** UTF-8 text as is (a cut may split a character: up to 3 bytes are dropped then), else base64. */
const keptPayload = (data: Uint8Array): Pick<DeadLetterRecord, "payload" | "payloadEncoding" | "payloadBytes" | "payloadTruncated"> => {
  const truncated = data.length > maxPayloadKept
  const kept = data.subarray(0, maxPayloadKept)
  for (let cut = 0; cut <= (truncated ? 3 : 0); cut++) {
    try {
      return { payload: utf8.decode(kept.subarray(0, kept.length - cut)), payloadEncoding: "utf8", payloadBytes: data.length, payloadTruncated: truncated }
    } catch {
      // not UTF-8 (at this cut)
    }
  }
  return { payload: Buffer.from(kept).toString("base64"), payloadEncoding: "base64", payloadBytes: data.length, payloadTruncated: truncated }
}

const headersOf = (headers: MsgHdrs | undefined): Record<string, Array<string>> =>
  Object.fromEntries((headers?.keys() ?? []).map((key) => [key, headers!.values(key)]))

/**
 * Writes dead letters. `write` succeeds once DEADLETTERS stored the letter (or already had it): only
 * then may the caller remove the original. Returns whether this call was the first to write it.
 */
/** What a dead letter keeps of a JetStream message `msg` of `stream`. */
export const undeliverable = (msg: JsMsg, stream: string, reason: DeadLetterReason, detail: string): Undeliverable => ({
  reason,
  detail,
  stream,
  subject: msg.subject,
  streamSequence: msg.seq,
  deliveries: msg.info.deliveryCount,
  headers: msg.headers,
  data: msg.data
})

export const makeDeadLetterWriter = Effect.gen(function*() {
  const { jetstream } = yield* Nats
  const write = (message: Undeliverable): Effect.Effect<boolean, NatsError> =>
    Effect.gen(function*() {
      const record: DeadLetterRecord = {
        reason: message.reason,
        detail: message.detail,
        stream: message.stream,
        subject: message.subject,
        streamSequence: message.streamSequence,
        deliveries: message.deliveries,
        deadAt: new Date(yield* Clock.currentTimeMillis).toISOString(),
        headers: headersOf(message.headers),
        ...keptPayload(message.data)
      }
      const ack = yield* tryNats("write dead letter", () =>
        jetstream.publish(deadLetterSubject(message.stream, message.reason), JSON.stringify(record), {
          msgID: `${message.stream}:${message.streamSequence}`
        }))
      if (ack.duplicate) return false
      yield* Metric.update(Metric.withAttributes(deadLettersTotal, { reason: message.reason }), 1)
      yield* Effect.logWarning("dead letter: a message the bus cannot handle was moved to DEADLETTERS", {
        reason: message.reason,
        detail: message.detail,
        subject: message.subject,
        streamSequence: message.streamSequence,
        deliveries: message.deliveries,
        deadLetterSequence: ack.seq
      })
      return true
    })
  return { write }
})

export type DeadLetterWriter = Effect.Success<typeof makeDeadLetterWriter>

/**
 * Sets aside a work-queue message nothing here can decode: kept in DEADLETTERS, then acknowledged, so it
 * neither blocks its consumer for ever nor goes unseen. If the dead letter cannot be written now, the
 * message stays (delivered, and set aside, again after its ack wait). None: the caller has nothing to handle.
 */
export const setAsideUndecodable = (writer: DeadLetterWriter, stream: string, msg: JsMsg, detail: string) =>
  writer.write(undeliverable(msg, stream, "undecodable", detail)).pipe(
    Effect.andThen(Effect.sync(() => msg.ack())),
    Effect.catch((error) => Effect.logWarning(`dead letter: could not write; the ${stream} message stays`, { subject: msg.subject, seq: msg.seq, error })),
    Effect.as(Option.none())
  )

const decoded = (seq: number, text: string) => {
  try {
    return DeadLetter.make({ sequence: seq, ...(JSON.parse(text) as DeadLetterRecord) })
  } catch {
    return undefined // not written by the platform (DEADLETTERS is the platform's own): skipped
  }
}

/** Reads DEADLETTERS by sequence, oldest first (its limits remove the oldest; nothing else leaves gaps). */
const make = Effect.gen(function*() {
  const { manager } = yield* Nats
  const fail = (operation: string) => (error: NatsError) => new DeadLettersError({ operation, cause: error.cause })
  const list = (options: { readonly limit: number; readonly after?: number | undefined }) =>
    Effect.gen(function*() {
      const { state } = yield* tryNats("dead letters info", () => manager.streams.info(StreamNames.deadLetters)).pipe(Effect.mapError(fail("info")))
      const deadLetters: Array<DeadLetter> = []
      let seq = Math.max((options.after ?? 0) + 1, state.first_seq)
      for (; seq <= state.last_seq && deadLetters.length < options.limit; seq++) {
        const at = seq
        const msg = yield* tryNats("read dead letter", () => manager.streams.getMessage(StreamNames.deadLetters, { seq: at })).pipe(
          Effect.mapError(fail("read"))
        )
        const letter = msg === null ? undefined : decoded(msg.seq, msg.string())
        if (letter !== undefined) deadLetters.push(letter)
      }
      const last = deadLetters.at(-1)
      return seq <= state.last_seq && last !== undefined ? { deadLetters, nextAfter: last.sequence } : { deadLetters }
    })
  return DeadLetters.of({ list })
})

export const layerJetStream: Layer.Layer<DeadLetters, never, Nats> = Layer.effect(DeadLetters, make)
