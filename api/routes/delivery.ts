/**
 * A destination's delivery as people see it (issue 9 items 6 and 7): its status (the deliverers'
 * counters and rates, the backlog on DELIVER, the dead letters, the ETA) and its dead letters — listed
 * with every attempt, replayed as new requests, or discarded with a reason the destination's history
 * keeps. Service and auditor keys read; service keys replay and discard.
 *
 * Replay claims the dead letter (two replays at once: one sends it), publishes, then removes it: a
 * crash between the two sends those records once more (a new package, new Idempotency-Keys), it never
 * loses them (a crashed replay's claim ends after a minute). Discard records the reason
 * in history first, then removes the dead letter: a crash between leaves the letter listed, and
 * discarding it again records the reason again.
 */
import { Clock, Effect, Option, Schema } from "effect"
import { DeadLetterQueue, type QueuedDeadLetter } from "../../domain/delivery/DeadLetterQueue.ts"
import { Attempt, DeadLetter } from "../../domain/delivery/DeadLetter.ts"
import { DelivererStatuses } from "../../domain/delivery/DelivererStatuses.ts"
import { waitingFor } from "../../domain/delivery/DeliveryBacklog.ts"
import { DestinationStatus } from "../../domain/delivery/DestinationStatus.ts"
import { replayChunks } from "../../domain/delivery/replay.ts"
import { statusOf } from "../../domain/delivery/statusOf.ts"
import { DestinationId } from "../../domain/entities/destination.ts"
import { nextUuidv7 } from "../../domain/uuidv7.ts"
import { type CurrentDestination, currentDestination } from "../../projections/delivery/currentDestination.ts"
import { DeliveryPackages } from "../../projections/delivery/packages.ts"
import { NotFound, problemResponse } from "../problems.ts"
import { recordCommand } from "../recordCommand.ts"
import { route } from "../route.ts"
import { readBoundedPage } from "./boundedPage.ts"
import { Limit, NonNegativeIntFromString } from "./params.ts"

const DeadLetterId = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(512))

/** Dead letters replayed by one request at most; the answer says how many remain. */
export const maxReplayPerRequest = 1_000
/** Read from the queue this many at a time while replaying all. */
const replayPage = 100

const DeadLetterItem = Schema.Struct({
  id: DeadLetter.fields.id,
  records: DeadLetter.fields.records,
  attempts: Schema.Array(Attempt)
}).annotate({ identifier: "DeadLetterItem" })

const DeadLetterList = Schema.Struct({
  items: Schema.Array(DeadLetterItem),
  /** pass as `after` for the next page; absent on the last page */
  next: Schema.optionalKey(Schema.Int)
}).annotate({ identifier: "DeadLetterList" })

const ReplayRequest = Schema.Struct({
  /** the dead letters to send again; all of the destination's (up to 1,000 per request) when absent */
  ids: Schema.optionalKey(Schema.Array(DeadLetterId).check(Schema.isMinLength(1), Schema.isMaxLength(maxReplayPerRequest)))
}).annotate({ identifier: "DeadLetterReplay" })

const Replayed = Schema.Struct({
  replayed: Schema.Int,
  /** dead letters the destination still has (call again to replay more) */
  remaining: Schema.Int
}).annotate({ identifier: "DeadLettersReplayed" })

const DiscardRequest = Schema.Struct({
  /** why the records are given up on: kept in the destination's history */
  reason: Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(1_000))
}).annotate({ identifier: "DeadLetterDiscard" })

const Params = Schema.Struct({ id: DestinationId })

/**
 * The destination's config and incarnation, or NotFound (404): read from the event store, so one
 * created a moment ago is seen. Its dead letters are those of this incarnation only: a deleted
 * predecessor's are neither listed nor replayed.
 */
const destinationOf = (id: string) =>
  Effect.flatMap(currentDestination(id), Option.match({
    onNone: () => Effect.fail(new NotFound({ detail: `destination ${id} does not exist` })),
    onSome: Effect.succeed
  }))

const problems = {
  401: problemResponse("missing or unknown API key"),
  403: problemResponse("a role that may not do this"),
  404: problemResponse("no such destination")
} as const

/**
 * Sends the letter's records again as a new package (into the package outbox, which puts it on DELIVER), then removes it from the queue: 1 when
 * it did, 0 when another replay has claimed it (it sends them). A failure ends the claim.
 */
const replay = (letter: QueuedDeadLetter, { config, incarnation }: CurrentDestination) =>
  Effect.gen(function*() {
    const queue = yield* DeadLetterQueue
    if (!(yield* queue.claim(config.id, letter))) return 0
    const uuid = yield* nextUuidv7
    const packages = yield* DeliveryPackages
    yield* Effect.gen(function*() {
      yield* packages.enqueue(replayChunks(letter.deadLetter, { uuid, lanes: config.lanes, incarnation }))
      yield* queue.remove(letter.deadLetter.destination, letter)
    }).pipe(Effect.onError(() => Effect.ignore(queue.unclaim(config.id, letter))))
    return 1
  })

/** Every dead letter of the destination (of its incarnation), oldest first, up to `maxReplayPerRequest`. */
const replayAll = (destination: CurrentDestination) =>
  Effect.gen(function*() {
    const queue = yield* DeadLetterQueue
    const { config: { id }, incarnation } = destination
    let replayed = 0
    let after: number | undefined
    while (replayed < maxReplayPerRequest) {
      const page = yield* queue.list(id, { limit: Math.min(replayPage, maxReplayPerRequest - replayed), after, incarnation })
      for (const letter of page.items) replayed += yield* replay(letter, destination)
      if (page.next === undefined) break
      after = page.next
    }
    return replayed
  })

/** The destination records in its history that a dead letter was given up on, and why. */
const recordDiscard = (destination: string, letter: QueuedDeadLetter, reason: string) =>
  recordCommand("destination", destination,
    { _tag: "DiscardDeadLetter", deadLetterId: letter.deadLetter.id, reason, records: letter.deadLetter.records.length },
    (message) => `destination ${destination} could not record the discard: ${message}; send it again`)

export const deliveryRoutes = [
  route({
    method: "GET", url: "/v1/destinations/:id/status", tags: ["delivery"], roles: ["service", "auditor"], admission: "reads",
    summary: "A destination's delivery: requests sent, succeeded, retried, failed; current rate against its limit; latency; backlog and ETA; dead letters; circuit",
    params: Params,
    responses: {
      200: { description: "its status (zeros and a closed circuit before any deliverer took it)", schema: DestinationStatus },
      400: problemResponse("invalid id"),
      ...problems,
      503: problemResponse("the bus is unavailable; retry")
    },
    handler: ({ params }) =>
      Effect.gen(function*() {
        const { config: destination } = yield* destinationOf(params.id)
        const packages = yield* DeliveryPackages
        const [deliverers, backlog, deadLetters] = yield* Effect.all([
          DelivererStatuses.use((statuses) => statuses.read(params.id)),
          waitingFor(params.id, packages.waiting),
          DeadLetterQueue.use((queue) => queue.count(params.id))
        ], { concurrency: 3 })
        const nowMillis = yield* Clock.currentTimeMillis
        return { status: 200, body: statusOf({ ratePerSecond: destination.ratePerSecond, deliverers, backlog, deadLetters, nowMillis }) }
      })
  }),
  route({
    method: "GET", url: "/v1/destinations/:id/dead-letters", tags: ["delivery"], roles: ["service", "auditor"], admission: "reads",
    summary: "A destination's dead letters, oldest first, each with its records and every attempt; page with `after` = the previous page's `next`",
    params: Params,
    query: Schema.Struct({ limit: Schema.optionalKey(Limit), after: Schema.optionalKey(NonNegativeIntFromString) }),
    responses: {
      200: { description: "a page of dead letters", schema: DeadLetterList },
      400: problemResponse("invalid parameter"),
      ...problems,
      503: problemResponse("the dead letters cannot be read now; retry")
    },
    handler: ({ params, query }) =>
      Effect.gen(function*() {
        const { incarnation } = yield* destinationOf(params.id)
        const queue = yield* DeadLetterQueue
        // a letter holds up to 1,000 records: a page is bounded in bytes too (boundedPage.ts)
        const page = yield* readBoundedPage(query.limit ?? 100, query.after, (count, after) =>
          Effect.map(queue.list(params.id, { limit: count, after, incarnation }), (slice) => ({ items: slice.items, more: slice.next !== undefined, next: slice.next })),
          (last) => last.sequence)
        const items = page.items.map(({ deadLetter }) => ({ id: deadLetter.id, records: deadLetter.records, attempts: deadLetter.attempts }))
        return { status: 200, body: page.more && page.next !== undefined ? { items, next: page.next } : { items } }
      })
  }),
  route({
    method: "POST", url: "/v1/destinations/:id/dead-letters/replay", tags: ["delivery"], roles: ["service"], admission: "commands",
    summary: "Send dead letters again, as new requests with new Idempotency-Keys: those named by `ids`, or all (`{}`, up to 1,000 per call)",
    params: Params,
    body: ReplayRequest,
    responses: {
      202: { description: "queued on DELIVER again and removed from the dead letters", schema: Replayed },
      400: problemResponse("invalid body"),
      ...problems,
      503: problemResponse("DELIVER is full or the bus is unavailable; nothing of the failing letter was lost, retry")
    },
    handler: ({ params, body }) =>
      Effect.gen(function*() {
        const destination = yield* destinationOf(params.id)
        const queue = yield* DeadLetterQueue
        let replayed: number
        if (body.ids === undefined) {
          replayed = yield* replayAll(destination)
        } else {
          const letters = yield* queue.get(params.id, body.ids, destination.incarnation)
          const found = new Set(letters.map((letter) => letter.deadLetter.id))
          const missing = body.ids.filter((id) => !found.has(id))
          if (missing.length > 0) return yield* new NotFound({ detail: `destination ${params.id} has no dead letter ${missing.slice(0, 10).join(", ")}` })
          replayed = 0
          for (const letter of letters) replayed += yield* replay(letter, destination)
        }
        return { status: 202, body: { replayed, remaining: yield* queue.count(params.id) } }
      })
  }),
  route({
    method: "DELETE", url: "/v1/destinations/:id/dead-letters/:deadLetterId", tags: ["delivery"], roles: ["service"], admission: "commands",
    summary: "Give up on a dead letter: its records are not sent; the reason is kept in the destination's history",
    params: Schema.Struct({ id: DestinationId, deadLetterId: DeadLetterId }),
    body: DiscardRequest,
    responses: {
      204: { description: "discarded" },
      400: problemResponse("invalid body (a reason is required)"),
      ...problems,
      503: problemResponse("the bus is unavailable; send it again"),
      504: problemResponse("the destination did not record it in time; send it again")
    },
    handler: ({ params, body }) =>
      Effect.gen(function*() {
        const { incarnation } = yield* destinationOf(params.id)
        const queue = yield* DeadLetterQueue
        const [letter] = yield* queue.get(params.id, [params.deadLetterId], incarnation)
        if (letter === undefined) return yield* new NotFound({ detail: `destination ${params.id} has no dead letter ${params.deadLetterId}` })
        yield* recordDiscard(params.id, letter, body.reason)
        yield* queue.remove(params.id, letter)
        return { status: 204 }
      })
  })
]
