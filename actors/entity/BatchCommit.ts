/**
 * One commit for the commands of one bus batch (DESIGN.md: "a shard applies a batch in one
 * multi-stream append"). Each command still goes to its own entity actor, which decides it in the
 * entity's order; instead of appending alone, the actor hands its events to its part of the batch
 * and waits. Once every part has handed in its events or said it has none (rejected, unchanged,
 * already applied, failed), the events of all parts are appended in one `appendToStreams`.
 *
 * A batch never waits for ever on one entity: once no part has arrived for `window` (an entity busy
 * with earlier commands, an actor that stopped), what has arrived is committed, and a part that comes
 * later appends alone. The window restarts with every part, so a large batch whose thousands of
 * actors activate one after the other still commits once. Parts cannot wait on each other
 * in a cycle either: batches are dispatched in bus order, so in every mailbox an earlier batch's
 * part comes before a later one's.
 *
 * A conflict (WrongExpectedRevisions) wrote nothing: the conflicting parts learn it as their own
 * WrongExpectedRevision (their actors re-read and decide again), the others are appended again
 * without them. A store failure fails every part of that commit, as a failed single append would.
 */
import { Deferred, Effect, Scope } from "effect"
import type { Duration } from "effect"
import {
  type AppendResult,
  type EventData,
  EventStore,
  type EventStoreError,
  type ExpectedRevision,
  type StreamAppend,
  WrongExpectedRevision
} from "../../domain/EventStore.ts"

/** One command's share of a batch commit. */
export interface BatchPart {
  /** Appends this part's events with the batch (or alone, once the batch has committed). */
  readonly append: (
    stream: string,
    events: ReadonlyArray<EventData>,
    expected: ExpectedRevision
  ) => Effect.Effect<AppendResult, WrongExpectedRevision | EventStoreError>
  /** This part writes nothing; idempotent, and a no-op after `append`. */
  readonly skip: Effect.Effect<void>
}

type Outcome = Effect.Effect<AppendResult, WrongExpectedRevision | EventStoreError>

interface Waiting {
  readonly append: StreamAppend
  readonly done: Deferred.Deferred<AppendResult, WrongExpectedRevision | EventStoreError>
}

/** The parts of a batch of `size` commands; the window timer lives in the current Scope. */
export const make = (size: number, window: Duration.Input): Effect.Effect<ReadonlyArray<BatchPart>, never, EventStore | Scope.Scope> =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const scope = yield* Scope.Scope
    let committed = false
    const waiting: Array<Waiting> = []

    /** Appends `batch` in one commit; on conflict, the conflicting ones fail and the rest go again. */
    const appendAll = (batch: ReadonlyArray<Waiting>): Effect.Effect<void> =>
      batch.length === 0 ? Effect.void : store.appendToStreams(batch.map((w) => w.append)).pipe(
        Effect.matchEffect({
          onSuccess: (results) => Effect.forEach(batch, (w, i) => Deferred.succeed(w.done, results[i]!), { discard: true }),
          onFailure: (error) => {
            if (error._tag === "EventStoreError") return Effect.forEach(batch, (w) => Deferred.fail(w.done, error), { discard: true })
            const conflicts = new Map(error.conflicts.map((c) => [c.stream, c]))
            return Effect.forEach(batch, (w) => {
              const conflict = conflicts.get(w.append.stream)
              return conflict === undefined ? Effect.void : Deferred.fail(w.done, new WrongExpectedRevision(conflict))
            }, { discard: true }).pipe(Effect.andThen(appendAll(batch.filter((w) => !conflicts.has(w.append.stream)))))
          }
        })
      )

    const commit = Effect.suspend(() => {
      if (committed) return Effect.void
      committed = true
      return appendAll(waiting.splice(0))
    })

    let settledParts = 0 // parts that appended or skipped
    // One watch per batch, started by its first part: commits once a whole window passed without another.
    const watch = Effect.gen(function*() {
      for (;;) {
        const seen = settledParts
        yield* Effect.sleep(window)
        if (committed) return
        if (settledParts === seen) return yield* commit
      }
    })
    /** A part appended or skipped: the first starts the watch, the last commits. */
    const settle = Effect.suspend(() => {
      settledParts++
      if (settledParts === size) return commit
      return settledParts === 1 ? Effect.asVoid(Effect.forkIn(watch, scope)) : Effect.void
    })

    const part = (): BatchPart => {
      let done = false
      return {
        append: (stream, events, expected): Outcome =>
          Effect.suspend(() => {
            if (done || committed) return store.appendToStream(stream, events, expected)
            done = true
            const entry: Waiting = { append: { stream, events, expectedRevision: expected }, done: Deferred.makeUnsafe() }
            waiting.push(entry)
            return Effect.andThen(settle, Deferred.await(entry.done))
          }),
        skip: Effect.suspend(() => {
          if (done) return Effect.void
          done = true
          return settle
        })
      }
    }
    return Array.from({ length: size }, part)
  })

