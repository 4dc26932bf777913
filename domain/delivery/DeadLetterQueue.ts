/**
 * The dead-letter queue of partner delivery (issue 9 item 6), as people work with it: list a
 * destination's dead letters oldest first, find some by id, remove one once it was replayed or
 * discarded. Declared here; kept on JetStream (stream DLQ, `dlq.<destination>`) by
 * infra/delivery/deadLetterQueue.ts. The deliverer writes the dead letters (domain/delivery/DeadLetter.ts).
 */
import { Context, Schema } from "effect"
import type { Effect } from "effect"
import { DeadLetter } from "./DeadLetter.ts"

/** A dead letter and its place in the queue: the listing's cursor, and what `remove` removes. */
export const QueuedDeadLetter = Schema.Struct({
  sequence: Schema.Int,
  deadLetter: DeadLetter
})
export type QueuedDeadLetter = typeof QueuedDeadLetter.Type

export interface DeadLetterQueuePage {
  readonly items: ReadonlyArray<QueuedDeadLetter>
  /** pass as `after` for the next page; absent when nothing newer is kept */
  readonly next?: number
}

/** How long a replay's claim on a dead letter holds (domain/subjects.ts `deadLetterClaims`). */
export const deadLetterClaimTtl = "1 minute"

export class DeadLetterQueueError extends Schema.TaggedError<DeadLetterQueueError>()("DeadLetterQueueError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

export class DeadLetterQueue extends Context.Service<DeadLetterQueue, {
  /**
   * Up to `limit` of the destination's dead letters, oldest first, after the sequence `after`
   * (exclusive); with `incarnation`, only those of that life of its id (and unstamped ones).
   */
  readonly list: (
    destination: string,
    options: { readonly limit: number; readonly after?: number | undefined; readonly incarnation?: number | undefined }
  ) => Effect.Effect<DeadLetterQueuePage, DeadLetterQueueError>
  /** The destination's dead letters with these ids (those that are there, of `incarnation` when given, in queue order). */
  readonly get: (destination: string, ids: ReadonlyArray<string>, incarnation?: number) => Effect.Effect<ReadonlyArray<QueuedDeadLetter>, DeadLetterQueueError>
  /**
   * Claims a dead letter for one replay: false when another replay holds it. A claim lasts
   * `deadLetterClaimTtl` (a replay crashed before removing the letter leaves it replayable after
   * that), or until `unclaim` (its replay failed).
   */
  readonly claim: (destination: string, letter: QueuedDeadLetter) => Effect.Effect<boolean, DeadLetterQueueError>
  /** Ends a claim whose replay failed: the letter can be replayed again at once. */
  readonly unclaim: (destination: string, letter: QueuedDeadLetter) => Effect.Effect<void, DeadLetterQueueError>
  /** Removes a dead letter; one already gone is not an error (a repeated replay or discard). */
  readonly remove: (destination: string, letter: QueuedDeadLetter) => Effect.Effect<void, DeadLetterQueueError>
  /** How many dead letters the destination has. */
  readonly count: (destination: string) => Effect.Effect<number, DeadLetterQueueError>
  /**
   * Removes the dead letters of the destination (it was deleted); with `before` (a `nextSequence`
   * taken earlier) only those stored before then. Returns how many were removed.
   */
  readonly purge: (destination: string, before?: number) => Effect.Effect<number, DeadLetterQueueError>
  /** The sequence the next dead letter stored will have, of any destination: a bound for `purge`. */
  readonly nextSequence: Effect.Effect<number, DeadLetterQueueError>
}>()("tributary/DeadLetterQueue") {}
