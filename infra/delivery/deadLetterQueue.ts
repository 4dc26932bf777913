/**
 * The dead-letter queue on JetStream: stream DLQ, one subject per destination (`dlq.<destination>`),
 * one message per dead letter (domain/delivery/DeadLetter.ts as JSON), published by the deliverer with
 * `Nats-Msg-Id` = the dead letter's id. Listing reads the destination's subject in sequence order
 * (`next_by_subj`: the server skips other destinations' letters). Finding by id reads each id's
 * sequence from the index the deliverer writes (infra/delivery/deadLetterIndex.ts) and that message: an
 * id the index does not have is not there. Ids it cannot place (`pending`: a crash between a letter's
 * publish and its entry; any id while letters from before the index are not indexed yet, which the
 * first process to start does in the background) are looked for by scanning the destination's
 * messages' headers only (an ephemeral headers-only consumer: the records are not read), fetching the
 * bodies of those it wants. A letter is removed by its sequence. A replay claims
 * a letter first with a create-only entry in the KV bucket `tributary-dead-letter-claims`, so that of
 * two replays at once only one sends it.
 */
import { DeliverPolicy, JetStreamApiCodes, type StoredMsg } from "@nats-io/jetstream"
import { Effect, Layer, Option, Schema } from "effect"
import { DeadLetter } from "../../domain/delivery/DeadLetter.ts"
import { DeadLetterQueue, DeadLetterQueueError, deadLetterClaimTtl, type QueuedDeadLetter } from "../../domain/delivery/DeadLetterQueue.ts"
import { belongsTo } from "../../domain/delivery/Incarnation.ts"
import { BucketNames, deliveryDeadLetterSubject, StreamNames } from "../../domain/subjects.ts"
import { openBucket } from "../nats/buckets.ts"
import { isApiError } from "../nats/freshConsumer.ts"
import { Nats, type NatsError, tryNats } from "../nats/Nats.ts"
import { subjectCount } from "../nats/scanSubject.ts"
import { nextSequence, purgeBefore } from "../nats/subjectPurge.ts"
import { makeDeadLetterIndex, type Placement } from "./deadLetterIndex.ts"

const stream = StreamNames.deliveryDeadLetters

/** Headers fetched per request while looking for ids. */
const scanBatch = 1_000

/** JetStream's answers to deleting a message that is not there (any more): before the first kept one, or after it. */
const alreadyGone = [10057, 10043]

const decodeLetter = Schema.decodeUnknownOption(Schema.fromJsonString(DeadLetter))

const fail = (operation: string) => (error: NatsError) => new DeadLetterQueueError({ operation, cause: error.cause })

/**
 * The letter, if the message is one of this destination's and of its incarnation when given (anything
 * else on DLQ is skipped, not fatal: a deleted predecessor's letter stays until the next purge).
 */
const letterOf = (destination: string, msg: StoredMsg, incarnation?: number): Option.Option<QueuedDeadLetter> =>
  Option.flatMap(decodeLetter(msg.string()), (deadLetter) =>
    deadLetter.destination === destination && belongsTo(deadLetter.incarnation, incarnation) ? Option.some({ sequence: msg.seq, deadLetter }) : Option.none())

/** Whether JetStream refused a create-only write: the key is there. */
const keyTaken = (cause: unknown) =>
  isApiError(cause, JetStreamApiCodes.StreamWrongLastSequence) || isApiError(cause, JetStreamApiCodes.StreamWrongLastSequenceUnknown)

export const make = Effect.gen(function*() {
  const { manager, jetstream } = yield* Nats
  const claims = yield* openBucket(BucketNames.deadLetterClaims, { ttl: deadLetterClaimTtl }).pipe(Effect.orDie)
  const scope = yield* Effect.scope
  const index = yield* makeDeadLetterIndex.pipe(Effect.orDie)
  // letters stored before the index: indexed once, in the background (until then, ids are looked for by scanning)
  yield* index.backfill.pipe(
    Effect.catch((error) => Effect.logWarning("dead letters from before the index could not be indexed; finding them by id scans DLQ until the next start", error)),
    Effect.forkScoped
  )
  const claimKey = (destination: string, letter: QueuedDeadLetter) => `${destination}.${letter.sequence}`

  /** The first message on `subject` at or after `seq`; null past the last. */
  const nextOn = (subject: string, seq: number) =>
    tryNats("read dead letter", () => manager.streams.getMessage(stream, { seq, next_by_subj: subject } as never)).pipe(
      Effect.mapError(fail("read"))
    )

  const bySequence = (seq: number) =>
    tryNats("get dead letter", () => manager.streams.getMessage(stream, { seq })).pipe(
      Effect.catchIf((error) => isApiError(error.cause, JetStreamApiCodes.NoMessageFound), () => Effect.succeed(null)),
      Effect.mapError(fail("get"))
    )

  const count = (destination: string) =>
    tryNats("count dead letters", () => subjectCount(manager, stream, deliveryDeadLetterSubject(destination))).pipe(
      Effect.mapError(fail("count"))
    )

  const list = (destination: string, options: { readonly limit: number; readonly after?: number | undefined; readonly incarnation?: number | undefined }) =>
    Effect.gen(function*() {
      const subject = deliveryDeadLetterSubject(destination)
      const items: Array<QueuedDeadLetter> = []
      let seq = (options.after ?? 0) + 1
      while (items.length < options.limit) {
        const msg = yield* nextOn(subject, seq)
        if (msg === null) return { items }
        seq = msg.seq + 1
        const letter = letterOf(destination, msg, options.incarnation)
        if (Option.isSome(letter)) items.push(letter.value)
      }
      const more = (yield* nextOn(subject, seq)) !== null
      return more ? { items, next: items[items.length - 1]!.sequence } : { items }
    })

  /** The sequences of the destination's messages whose `Nats-Msg-Id` is wanted, or that carry none (read to know). */
  const candidates = (destination: string, wanted: ReadonlySet<string>) =>
    Effect.acquireUseRelease(
      tryNats("scan dead letters", () =>
        jetstream.consumers.get(stream, { filter_subjects: deliveryDeadLetterSubject(destination), headers_only: true, deliver_policy: DeliverPolicy.All })),
      (consumer) =>
        tryNats("scan dead letters", async () => {
          const sequences: Array<number> = []
          let found = 0
          for (;;) {
            const batch = await consumer.fetch({ max_messages: scanBatch, expires: 2_000 })
            let seen = 0
            let last = false
            for await (const msg of batch) {
              seen++
              const id = msg.headers?.get("Nats-Msg-Id") ?? ""
              if (id === "" || wanted.has(id)) sequences.push(msg.seq)
              if (wanted.has(id)) found++
              if (msg.info.pending === 0 || found === wanted.size) {
                last = true
                break
              }
            }
            if (last || seen === 0) return sequences
          }
        }),
      (consumer) => Effect.ignore(tryNats("end dead letter scan", () => consumer.delete()))
    ).pipe(Effect.mapError(fail("scan")))

  /** The destination's letter at `seq`, if it is there (of `incarnation`, when given). */
  const letterAtSeq = (destination: string, seq: number, incarnation?: number) =>
    Effect.map(bySequence(seq), (msg) => (msg === null ? Option.none() : letterOf(destination, msg, incarnation)))

  const get = (destination: string, ids: ReadonlyArray<string>, incarnation?: number) =>
    Effect.gen(function*() {
      if (ids.length === 0 || (yield* count(destination)) === 0) return []
      const wanted = new Set(ids)
      const found = new Map<string, QueuedDeadLetter>()
      /** ids the index cannot place: looked for by the scan */
      const unplaced = new Set<string>()
      const complete = yield* index.complete.pipe(Effect.orElseSucceed(() => false))
      yield* Effect.forEach(wanted, (id) =>
        Effect.gen(function*() {
          // a read of the index that fails only sends its id to the scan
          const placement = yield* index.find(destination, id).pipe(Effect.orElseSucceed((): Placement => ({ _tag: "Pending" })))
          if (placement._tag === "At") {
            // an entry naming a message that is not this letter (stale) is looked for as if unplaced
            const letter = Option.filter(yield* letterAtSeq(destination, placement.seq, incarnation), (l) => l.deadLetter.id === id)
            if (Option.isSome(letter)) found.set(id, letter.value)
            else unplaced.add(id)
          } else if (placement._tag === "Pending" || !complete) unplaced.add(id)
        }), { concurrency: 16, discard: true })
      if (unplaced.size > 0) {
        for (const seq of yield* candidates(destination, unplaced)) {
          const letter = yield* letterAtSeq(destination, seq, incarnation)
          if (Option.isSome(letter) && unplaced.has(letter.value.deadLetter.id)) found.set(letter.value.deadLetter.id, letter.value)
        }
      }
      return [...found.values()].sort((a, b) => a.sequence - b.sequence)
    })

  const remove = (destination: string, letter: QueuedDeadLetter) =>
    tryNats("remove dead letter", () => manager.streams.deleteMessage(stream, letter.sequence)).pipe(
      Effect.asVoid,
      // already removed (a replay or discard repeated): what was wanted is done
      Effect.catchIf((error) => alreadyGone.some((code) => isApiError(error.cause, code)), () => Effect.void),
      Effect.mapError(fail("remove")),
      // a stale entry left by a failure here is harmless: a letter read through the index is checked
      Effect.andThen(index.forget(destination, letter.deadLetter.id).pipe(Effect.ignore))
    )

  // still there once claimed: a replay that listed it may come after another's claim ended with it removed
  const claim = (destination: string, letter: QueuedDeadLetter) =>
    tryNats("claim dead letter", () => claims.create(claimKey(destination, letter), "replaying")).pipe(
      Effect.as(true),
      Effect.catchIf((error) => keyTaken(error.cause), () => Effect.succeed(false)),
      Effect.mapError(fail("claim")),
      Effect.flatMap((claimed) => claimed ? Effect.map(bySequence(letter.sequence), (msg) => msg !== null) : Effect.succeed(false))
    )

  const unclaim = (destination: string, letter: QueuedDeadLetter) =>
    tryNats("unclaim dead letter", () => claims.delete(claimKey(destination, letter))).pipe(Effect.mapError(fail("unclaim")))

  return DeadLetterQueue.of({
    list,
    get,
    claim,
    unclaim,
    remove,
    count,
    purge: (destination, before) =>
      purgeBefore(manager, stream, deliveryDeadLetterSubject(destination), before).pipe(
        Effect.mapError(fail("purge")),
        // entries of purged letters are forgotten beside it: until then one is stale, which a lookup checks
        Effect.tap(index.forgetBefore(destination, before).pipe(
          Effect.catch((error) => Effect.logWarning("a purged destination's dead-letter index entries could not be forgotten", { destination, error })),
          Effect.forkIn(scope)
        ))
      ),
    nextSequence: nextSequence(manager, stream).pipe(Effect.mapError(fail("info")))
  })
})

export const layerJetStream: Layer.Layer<DeadLetterQueue, never, Nats> = Layer.effect(DeadLetterQueue, make)
