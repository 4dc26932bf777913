/**
 * The byte bound of a stream that must never lose what it acknowledged (INGEST, EVENTS, DELIVER, DLQ:
 * work not yet done, letters not yet read), kept by its publishers rather than by JetStream alone.
 *
 * nats-server 2.9 with `discard: new` and `max_bytes` drops the OLDEST messages of a stream when a new
 * one passes its check by payload size but not by its stored size (subject, headers and framing
 * included): measured with random 150–550-byte messages into a 2,500-byte stream, 10 of 40 streams
 * lost messages JetStream had acknowledged (stop 21, found by DELIVER's bound test). Its count bounds
 * (`max_msgs`, `max_msgs_per_subject`) are exact. So these streams' `max_bytes` is a backstop at twice
 * the configured bound (`backstopBytes`), and publishers refuse at the configured bound themselves:
 * the stream's bytes as read at most every `refreshMs`, plus what this process admitted since (and in
 * the half second before the read, which may not have been stored yet). Each
 * of several processes may pass the bound by a second's publishes; the backstop is far beyond that,
 * so a message is refused, never an acknowledged one dropped.
 */
import { Clock, Effect } from "effect"
import { Nats, type NatsError, tryNats } from "./Nats.ts"

const backstopFactor = 2

/** The `max_bytes` given to JetStream for a stream whose publishers keep `bytes`. */
export const backstopBytes = (bytes: number): number => bytes * backstopFactor

/** The bound the publishers keep, from the stream's `max_bytes` (none when it has none). */
const boundOf = (maxBytes: number): number => maxBytes > 0 ? maxBytes / backstopFactor : Number.POSITIVE_INFINITY

export interface StreamBytes {
  /** Whether `messages` messages (1 by default) of `bytes` in all (their bodies) fit under the stream's bound; if so they count as published. */
  readonly admit: (bytes: number, messages?: number) => Effect.Effect<boolean, NatsError>
}

/** A publish admitted this long before a read may not have been stored when the read was made: it counts beside it. */
const inFlightMs = 500

/** What JetStream stores beside a message's body (its subject, headers and framing), counted generously. */
const perMessageBytes = 128

export const makeStreamBytes = (stream: string, refreshMs = 1_000) =>
  Effect.gen(function*() {
    const { manager } = yield* Nats
    const recent: Array<{ readonly at: number; readonly bytes: number }> = []
    let recentBytes = 0
    // read at most every `refreshMs`, once however many publishers ask; a failed read is not kept
    const read = yield* tryNats(`${stream} info`, () => manager.streams.info(stream)).pipe(
      Effect.flatMap((info) =>
        Effect.map(Clock.currentTimeMillis, (at) => ({
          bytes: info.state.bytes,
          bound: boundOf(info.config.max_bytes),
          at
        }))
      ),
      Effect.cachedWithTTL((exit) => exit._tag === "Success" ? refreshMs : 0)
    )
    const admit = (body: number, messages = 1) =>
      Effect.gen(function*() {
        const bytes = body + messages * perMessageBytes
        const { bytes: stored, bound, at } = yield* read
        // what this process admitted since the read (and shortly before it: maybe not stored yet when it
        // was made); reads only get newer, so what an older one holds is forgotten for good
        while (recent.length > 0 && recent[0]!.at < at - inFlightMs) recentBytes -= recent.shift()!.bytes
        const held = stored + recentBytes
        // an empty stream takes one message of any size, as JetStream would
        if (held + bytes > bound && held > 0) return false
        recent.push({ at: yield* Clock.currentTimeMillis, bytes })
        recentBytes += bytes
        return true
      })
    return { admit } satisfies StreamBytes
  })
