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
 * A part may touch several streams (its entity's, and its relatives': domain/children.ts). Parts that
 * could see one another's writes never share a commit: a stream is in one commit either for one
 * part only, or only checked (at the same revision) by several, or only appended to unchecked
 * ("any") by several; a part that does not fit commits after the others.
 *
 * A conflict (WrongExpectedRevisions) wrote nothing: the conflicting parts learn it (their actors
 * re-read and decide again), the others are appended again without them. A store failure fails
 * every part of that commit, as a failed single append would.
 */
import { Deferred, Effect, Scope } from "effect"
import type { Duration } from "effect"
import {
  type AppendResult,
  EventStore,
  type EventStoreError,
  type StreamAppend,
  WrongExpectedRevisions
} from "../../domain/EventStore.ts"

/** Appends one command's streams, all or nothing; one result per stream, in the order given. */
export type Append = (appends: ReadonlyArray<StreamAppend>) => Effect.Effect<ReadonlyArray<AppendResult>, WrongExpectedRevisions | EventStoreError>

/** An append outside any batch: a single stream through appendToStream, several through appendToStreams. */
export const appendAlone = (store: EventStore["Service"]): Append => (appends) =>
  appends.length !== 1 ? store.appendToStreams(appends) : store.appendToStream(appends[0]!.stream, appends[0]!.events, appends[0]!.expectedRevision).pipe(
    Effect.map((result) => [result]),
    Effect.catchTag("WrongExpectedRevision", (conflict) => Effect.fail(new WrongExpectedRevisions({ conflicts: [conflict] })))
  )

/** One command's share of a batch commit. */
export interface BatchPart {
  /** Appends this part's streams with the batch (or alone, once the batch has committed). */
  readonly append: Append
  /** This part writes nothing; idempotent, and a no-op after `append`. */
  readonly skip: Effect.Effect<void>
}

interface Waiting {
  readonly appends: ReadonlyArray<StreamAppend>
  readonly done: Deferred.Deferred<ReadonlyArray<AppendResult>, WrongExpectedRevisions | EventStoreError>
}

/** How a part uses a stream, for who may share a commit: only checks it (at a revision), appends unchecked, or alone. */
const useOf = (append: StreamAppend): string =>
  append.events.length === 0 ? `check ${append.expectedRevision}` : append.expectedRevision === "any" ? "any" : "alone"

/** The parts in commits in which no part's check or append can see another's writes; in order where they fit. */
const commitsOf = (parts: ReadonlyArray<Waiting>): Array<Array<Waiting>> => {
  const commits: Array<{ readonly parts: Array<Waiting>; readonly uses: Map<string, string> }> = []
  for (const part of parts) {
    const fits = (uses: Map<string, string>) =>
      part.appends.every((a) => {
        const use = uses.get(a.stream)
        return use === undefined || (use !== "alone" && use === useOf(a))
      })
    let commit = commits.find((c) => fits(c.uses))
    if (commit === undefined) {
      commit = { parts: [], uses: new Map() }
      commits.push(commit)
    }
    commit.parts.push(part)
    for (const a of part.appends) commit.uses.set(a.stream, useOf(a))
  }
  return commits.map((c) => c.parts)
}

/** One commit's appends, a stream shared by several parts once (their unchecked events joined); where each part's streams went. */
const mergeOf = (parts: ReadonlyArray<Waiting>) => {
  const merged: Array<StreamAppend> = []
  const at = new Map<string, number>()
  const indexes = parts.map((part) =>
    part.appends.map((a) => {
      const i = at.get(a.stream)
      if (i === undefined) {
        at.set(a.stream, merged.length)
        merged.push(a)
        return merged.length - 1
      }
      merged[i] = { ...merged[i]!, events: [...merged[i]!.events, ...a.events] }
      return i
    }))
  return { merged, indexes }
}

/** The parts of a batch of `size` commands; the window timer lives in the current Scope. */
export const make = (size: number, window: Duration.Input): Effect.Effect<ReadonlyArray<BatchPart>, never, EventStore | Scope.Scope> =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const scope = yield* Scope.Scope
    const alone = appendAlone(store)
    let committed = false
    const waiting: Array<Waiting> = []

    /** Appends one commit's parts together; on conflict, the conflicting ones fail and the rest go again. */
    const appendTogether = (batch: ReadonlyArray<Waiting>): Effect.Effect<void> => {
      if (batch.length === 0) return Effect.void
      const { indexes, merged } = mergeOf(batch)
      return store.appendToStreams(merged).pipe(
        Effect.matchEffect({
          onSuccess: (results) => Effect.forEach(batch, (w, i) => Deferred.succeed(w.done, indexes[i]!.map((j) => results[j]!)), { discard: true }),
          onFailure: (error) => {
            if (error._tag === "EventStoreError") return Effect.forEach(batch, (w) => Deferred.fail(w.done, error), { discard: true })
            const conflicts = new Map(error.conflicts.map((c) => [c.stream, c]))
            const conflicting = (w: Waiting) => w.appends.flatMap((a) => conflicts.get(a.stream) ?? [])
            return Effect.forEach(batch, (w) => {
              const own = conflicting(w)
              return own.length === 0 ? Effect.void : Deferred.fail(w.done, new WrongExpectedRevisions({ conflicts: [own[0]!, ...own.slice(1)] }))
            }, { discard: true }).pipe(Effect.andThen(appendTogether(batch.filter((w) => conflicting(w).length === 0))))
          }
        })
      )
    }

    const commit = Effect.suspend(() => {
      if (committed) return Effect.void
      committed = true
      return Effect.forEach(commitsOf(waiting.splice(0)), appendTogether, { discard: true })
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
        append: (appends) =>
          Effect.suspend(() => {
            if (done || committed) return alone(appends)
            done = true
            const entry: Waiting = { appends, done: Deferred.makeUnsafe() }
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

