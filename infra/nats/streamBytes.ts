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
 * the stream's bytes as last read, plus what this process's publishes hold that the read may not have
 * seen: those still out, and those that ended after the read began.
 *
 * Several processes publish to these streams, each seeing the others' messages only at its next read.
 * So a read serves at most `refreshMs`, and what a process's publishes hold unseen by its last read
 * (those still out included) stays within an eighth (`share`) of the room that read left, or one
 * message of at most an eighth of the bound; past it, the process reads again (never more reads than
 * publishes) or, nothing stored since, refuses. Up to eight processes flooding a stream at once stay
 * under the backstop.
 * A larger message is refused, even by an empty stream: the platform's configuration keeps every
 * message of INGEST, EVENTS and DLQ within an eighth of its bound (api/config.ts). DELIVER has one
 * publisher at a time (`onePublisher`: the package publisher's lease), whose first message after a read
 * may be of any size. A message counts its body, subject and id (`messageBytes`) and 128 bytes more.
 * Before stop 22 a process admitted up to the whole room for a second; then (found by this stop's
 * outside attacks) a first message of up to the whole room after each read, any message into a stream
 * it read empty, and an eighth a read however many of its publishes were still out: processes passed
 * the backstop, and JetStream dropped messages it had acknowledged (`test/infra/streamBytes.test.ts`,
 * `test/attack22/`).
 */
import { Effect, Option } from "effect"
import { Nats, type NatsError, tryNats } from "./Nats.ts"

const backstopFactor = 2

/** The `max_bytes` given to JetStream for a stream whose publishers keep `bytes`. */
export const backstopBytes = (bytes: number): number => bytes * backstopFactor

/** The bound the publishers keep, from the stream's `max_bytes` (none when it has none). */
export const boundOf = (maxBytes: number): number => maxBytes > 0 ? maxBytes / backstopFactor : Number.POSITIVE_INFINITY

export interface StreamBytes {
  /**
   * Runs `publish` if `messages` messages (1 by default) of `bytes` in all (each its `messageBytes`)
   * fit under the stream's bound (`None`, not run, if not). What it publishes counts as held until a read of the
   * stream begun after it ended.
   */
  readonly admit: <A, E, R>(bytes: number, publish: Effect.Effect<A, E, R>, messages?: number) => Effect.Effect<Option.Option<A>, E | NatsError, R>
}

/** A process's part of the room a read left, before it reads again. */
const share = 8

/** The stream as read (the `number`th read begun); whether this process took any room since, and asked for a newer read. */
interface Reading {
  readonly number: number
  readonly stored: number
  readonly bound: number
  took?: boolean
  replaced?: boolean
}

/** A publish admitted: its bytes, and the number of the next read begun once it ended. */
interface Held {
  readonly bytes: number
  seenBy?: number
}

/** What JetStream stores beside a message's body, subject and id (its other headers and framing), counted generously. */
const perMessageBytes = 128

/** A message's bytes as its gate counts them: its body, its subject and its `Nats-Msg-Id` (which may carry a long destination or letter id). */
export const messageBytes = (body: string, subject: string, msgId: string): number =>
  Buffer.byteLength(body) + Buffer.byteLength(subject) + Buffer.byteLength(msgId)

export interface StreamBytesOptions {
  /** how long a read of the stream serves at most; default 1 s */
  readonly refreshMs?: number
  /**
   * one process at a time publishes to the stream (it holds a lease): its first message after a read
   * may be of any size within the room. It still keeps the share otherwise: a lease does not fence, so
   * a holder that lost it may publish beside the next one for a moment.
   */
  readonly onePublisher?: boolean
}

export const makeStreamBytes = (stream: string, { onePublisher = false, refreshMs = 1_000 }: StreamBytesOptions = {}) =>
  Effect.gen(function*() {
    const { manager } = yield* Nats
    let reads = 0
    const held = new Set<Held>()
    let heldBytes = 0
    let prunedBy = 0
    // a read serves at most `refreshMs`, once however many publishers ask, or less once this process
    // took its share of the room; a failed read is not kept
    const [read, invalidate] = yield* Effect.suspend(() => {
      const number = ++reads
      return Effect.map(tryNats(`${stream} info`, () => manager.streams.info(stream)), (info): Reading => ({
        number,
        stored: info.state.bytes,
        bound: boundOf(info.config.max_bytes)
      }))
    }).pipe(Effect.cachedInvalidateWithTTL((exit) => exit._tag === "Success" ? refreshMs : 0))
    /** What this process's publishes hold that `reading` did not see: out still, or ended after it began. */
    const unseen = (reading: Reading) => {
      if (prunedBy < reading.number) {
        prunedBy = reading.number
        for (const h of held) {
          if (h.seenBy !== undefined && h.seenBy <= reading.number) {
            held.delete(h)
            heldBytes -= h.bytes
          }
        }
      }
      return heldBytes
    }
    /**
     * Whether `bytes` more stay within what this process may hold unseen by `reading` (`own`): an eighth
     * of the room it left, or one message of at most an eighth of the bound.
     */
    const fits = (reading: Reading, own: number, bytes: number) =>
      own === 0 ? onePublisher || bytes <= reading.bound / share : own + bytes <= (reading.bound - reading.stored) / share
    /** The bytes held for the publish, or nothing if the bound has no room for them. */
    const take = (bytes: number): Effect.Effect<Held | undefined, NatsError> =>
      Effect.gen(function*() {
        for (;;) {
          const reading = yield* read
          const own = unseen(reading)
          if (reading.stored + own + bytes > reading.bound) return undefined
          if (fits(reading, own, bytes)) {
            const h: Held = { bytes }
            held.add(h)
            heldBytes += bytes
            reading.took = true
            return h
          }
          // nothing taken since this read: its publishes still out hold its share (or the message is larger
          // than one may be, which the configuration rules out): refused
          if (!reading.took) return undefined
          // this process took its share of the room: read again (it may have stored some since), once however many fibers ask
          if (!reading.replaced) {
            reading.replaced = true
            yield* invalidate
          }
        }
      })
    // what is taken is given back however the publish ends, interrupted too (between the two as well:
    // bytes held for good would shrink the bound for good)
    const admit = <A, E, R>(body: number, publish: Effect.Effect<A, E, R>, messages = 1) =>
      Effect.acquireUseRelease(
        take(body + messages * perMessageBytes),
        (h): Effect.Effect<Option.Option<A>, E, R> => h === undefined ? Effect.succeedNone : Effect.map(publish, Option.some),
        (h) =>
          Effect.sync(() => {
            if (h !== undefined) h.seenBy = reads + 1
          })
      )
    return { admit } satisfies StreamBytes
  })
