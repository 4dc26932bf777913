/**
 * Where each delivery dead letter is on DLQ: the KV bucket `tributary-dead-letter-index`, one entry per
 * letter (`<destination>.<hash of its id>` → its DLQ sequence), so that the dead-letter queue finds a
 * letter by id — or knows it is not there — with one KV read and one message read, however many letters
 * the destination has (infra/delivery/deadLetterQueue.ts).
 *
 * Complete by construction: the deliverer writes a letter's entry as `pending` before publishing it,
 * and its sequence once DLQ stored it (infra/delivery/deliveryLedger.ts). An id with no entry was never
 * written; one still `pending` (a crash between the two writes, or a publish that failed) is looked
 * for by scanning. Letters stored before the index existed are indexed once, by the first process that
 * finds the bucket without its `backfilled` entry; until then every id the index does not place is
 * looked for by scanning, as before. A letter read through its entry is checked to be that letter.
 */
import { createHash } from "node:crypto"
import { DeliverPolicy, type JsMsg } from "@nats-io/jetstream"
import { Effect } from "effect"
import { BucketNames, StreamNames } from "../../domain/subjects.ts"
import { openBucket } from "../nats/buckets.ts"
import { Nats, tryNats } from "../nats/Nats.ts"

/** A letter's key: its destination (a slug, a valid key token) and a hash of its id (which may hold any character). */
export const deadLetterIndexKey = (destination: string, id: string): string =>
  `${destination}.${createHash("sha256").update(id).digest("base64url").slice(0, 32)}`

/** Written once every letter stored before the index was indexed (no destination slug has no dot). */
const backfilledKey = "backfilled"
const pending = "pending"

/** What the index says of an id: its sequence, written but maybe not stored, or never written. */
export type Placement = { readonly _tag: "At"; readonly seq: number } | { readonly _tag: "Pending" } | { readonly _tag: "Absent" }

export const makeDeadLetterIndex = Effect.gen(function*() {
  const { manager, jetstream } = yield* Nats
  const bucket = yield* openBucket(BucketNames.deadLetterIndex, { ttl: "forever" })

  const write = (key: string, value: string) => tryNats("index dead letter", () => bucket.put(key, value)).pipe(Effect.asVoid)

  /** Before the letter `id` of `destination` is published: from now on a lookup of it scans until `stored`. */
  const reserve = (destination: string, id: string) => write(deadLetterIndexKey(destination, id), pending)

  /** DLQ stored the letter at `seq`. */
  const stored = (destination: string, id: string, seq: number) => write(deadLetterIndexKey(destination, id), String(seq))

  const find = (destination: string, id: string) =>
    tryNats("read dead letter index", () => bucket.get(deadLetterIndexKey(destination, id))).pipe(
      Effect.map((entry): Placement => {
        if (entry === null || entry.operation !== "PUT") return { _tag: "Absent" }
        const seq = Number(entry.string())
        return Number.isSafeInteger(seq) && seq > 0 ? { _tag: "At", seq } : { _tag: "Pending" }
      })
    )

  /** Whether an id with no entry is known not to be on DLQ (every letter from before the index was indexed). */
  const complete = tryNats("read dead letter index", () => bucket.get(backfilledKey)).pipe(
    Effect.map((entry) => entry !== null && entry.operation === "PUT")
  )

  const stream = `KV_${BucketNames.deadLetterIndex}`
  const subjectOf = (key: string) => `$KV.${BucketNames.deadLetterIndex}.${key}`

  /**
   * Forgets one letter's entry (it was removed): its subject purged from the bucket's stream, leaving
   * nothing. A KV purge or delete leaves a marker per key for good: before stop 22, one a letter ever
   * replayed or discarded, a bucket growing without bound under a destination that keeps failing.
   */
  const forget = (destination: string, id: string) =>
    tryNats("unindex dead letter", () => manager.streams.purge(stream, { filter: subjectOf(deadLetterIndexKey(destination, id)) })).pipe(Effect.asVoid)

  /**
   * Hands every message an ephemeral consumer of `stream` holds to `visit`, in order, a fetch at a time
   * (each fetch's work awaited before the next), then deletes the consumer.
   */
  const eachMessage = async (stream: string, config: Parameters<typeof jetstream.consumers.get>[1], visit: (msg: JsMsg) => Promise<unknown> | undefined) => {
    const consumer = await jetstream.consumers.get(stream, config)
    try {
      for (;;) {
        const work: Array<Promise<unknown>> = []
        let seen = 0
        let last = false
        for await (const msg of await consumer.fetch({ max_messages: 1_000, expires: 2_000 })) {
          seen++
          const done = visit(msg)
          if (done !== undefined) work.push(done)
          if (msg.info.pending === 0) {
            last = true
            break
          }
        }
        await Promise.all(work)
        if (last || seen === 0) return
      }
    } finally {
      await consumer.delete().catch(() => undefined)
    }
  }

  /**
   * Forgets the entries of `destination`'s letters stored before DLQ sequence `before` (all of them
   * without it): their letters were purged. Entries of letters stored since (a destination created
   * again under the id) stay, and so do `pending` ones (at worst a lookup that scans).
   */
  const forgetBefore = (destination: string, before?: number) => {
    const subjects = subjectOf(`${destination}.>`)
    if (before === undefined) return tryNats("unindex dead letters", () => manager.streams.purge(stream, { filter: subjects })).pipe(Effect.asVoid)
    return tryNats("unindex dead letters", () =>
      eachMessage(stream, { filter_subjects: subjects, deliver_policy: DeliverPolicy.LastPerSubject }, (msg) => {
        const seq = Number(msg.string())
        return Number.isSafeInteger(seq) && seq < before ? manager.streams.purge(stream, { filter: msg.subject }) : undefined
      }))
  }

  /**
   * Indexes every letter DLQ holds (headers only: each one's subject, `Nats-Msg-Id` and sequence), then
   * writes `backfilled`. Idempotent: several processes doing it at once write the same entries.
   */
  const backfill = Effect.gen(function*() {
    if (yield* complete) return
    const { state } = yield* tryNats("dead letters info", () => manager.streams.info(StreamNames.deliveryDeadLetters))
    if (state.messages > 0) {
      yield* tryNats("index dead letters", () =>
        eachMessage(StreamNames.deliveryDeadLetters, { deliver_policy: DeliverPolicy.All, headers_only: true }, (msg) => {
          const destination = msg.subject.slice("dlq.".length)
          const id = msg.headers?.get("Nats-Msg-Id")
          // one published without it (not by the deliverer): its id read from its body
          const idOf = id !== undefined && id !== ""
            ? Promise.resolve(id)
            : manager.streams.getMessage(StreamNames.deliveryDeadLetters, { seq: msg.seq }).then((body) => (body?.json<{ id?: unknown }>() ?? {}).id).catch(() => undefined)
          return idOf.then((found) => (typeof found === "string" ? bucket.put(deadLetterIndexKey(destination, found), String(msg.seq)) : undefined))
        }))
    }
    yield* write(backfilledKey, new Date().toISOString())
  })

  return { reserve, stored, find, complete, forget, forgetBefore, backfill }
})

export type DeadLetterIndex = Effect.Success<typeof makeDeadLetterIndex>
