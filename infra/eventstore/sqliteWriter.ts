/**
 * The SQLite event store's writer: commits a batch of appends in one transaction (group commit), each
 * request inside its own SAVEPOINT so a conflict or error rolls back only that request. It owns the
 * write connection and runs on the writer thread (sqliteWriterThread.ts): plain synchronous code, no
 * Effect runtime, because everything it does is one blocking SQLite call after another.
 */
import type { DatabaseSync } from "node:sqlite"
import { prepare } from "./sqliteStatements.ts"
import type { AppendResult, ExpectedRevision, RevisionConflict } from "../../domain/EventStore.ts"
import { eventFields, streamFields } from "./sqliteWriterProtocol.ts"
import type { WriteOutcome, WriteRequest } from "./sqliteWriterProtocol.ts"

/** Stream heads kept in memory by the writer (the cache starts over when full). */
const maxCachedHeads = 100_000

/**
 * domain/EventStore.ts's `meetsExpectedRevision`, repeated: importing that module here would load
 * `effect` into the writer thread for one line.
 */
const meetsExpectedRevision = (expected: ExpectedRevision, current: number): boolean =>
  expected === "any" ||
  (expected === "no_stream" ? current === -1 : expected === "stream_exists" ? current >= 0 : current === expected)

/** One stream of a request: its events are `count` events of `request.events` from event index `first`. */
interface Append {
  readonly stream: string
  readonly expected: ExpectedRevision
  readonly first: number
  readonly count: number
}

const decode = (request: WriteRequest): Array<Append> => {
  const appends: Array<Append> = []
  let first = 0
  for (let i = 0; i < request.streams.length; i += streamFields) {
    const count = request.streams[i + 2] as number
    appends.push({ stream: request.streams[i] as string, expected: request.streams[i + 1] as ExpectedRevision, first, count })
    first += count
  }
  return appends
}
interface Head {
  readonly revision: number
  readonly position: number
}

/** Causes cross to the main thread by structured clone, which keeps an Error's name and message (and SQLite's code in it). */
const cloneable = (cause: unknown): Error => {
  if (!(cause instanceof Error)) return new Error(String(cause))
  const code = (cause as { code?: unknown }).code
  return typeof code === "string" && !cause.message.includes(code) ? new Error(`${code}: ${cause.message}`) : cause
}

/** A request's events could not be inserted (not a conflict: e.g. an event id already used elsewhere). */
class InsertFailed {
  readonly index: number
  readonly cause: unknown
  constructor(index: number, cause: unknown) {
    this.index = index
    this.cause = cause
  }
}

export const makeWriter = (db: DatabaseSync) => {
  const statements = prepare(db)

  /** An append whose events are already stored right where it would put them is a retry: it succeeds. */
  const findRetry = (request: WriteRequest, append: Append): AppendResult | undefined => {
    if (append.count === 0) return undefined
    const first = statements.byEventId.get(request.events[append.first * eventFields]!)
    if (first === undefined || first.stream !== append.stream) return undefined
    const revision = first.revision as number
    const expected = append.expected
    if (typeof expected === "number" ? revision !== expected + 1 : expected === "no_stream" && revision !== 0) {
      return undefined
    }
    const stored = statements.streamForwards.all(append.stream, revision, append.count)
    if (stored.length !== append.count) return undefined
    for (let i = 0; i < stored.length; i++) {
      if (stored[i]!.event_id !== request.events[(append.first + i) * eventFields]) return undefined
    }
    const last = stored[stored.length - 1]!
    return { nextRevision: last.revision as number, position: last.position as number }
  }

  // Stream heads this writer knows, so an append costs no lookup. Valid while no other connection
  // writes: `data_version` changes when one commits, and then the cache is dropped (see commit).
  const heads = new Map<string, Head>()
  let seenVersion: unknown = undefined
  const headOf = (stream: string): Head | undefined => {
    const cached = heads.get(stream)
    if (cached !== undefined) return cached
    const row = statements.streamHead.get(stream)
    return row === undefined ? undefined : { revision: row.revision as number, position: row.position as number }
  }

  /**
   * Checks every stream of a request, then inserts all its events, or nothing. `retried` are appends
   * found already stored (after an insert clashed on their event ids): they count as done.
   * Returns the outcome and the new heads, which the caller caches only once the request is kept.
   */
  const tryRequest = (
    request: WriteRequest,
    appends: ReadonlyArray<Append>,
    recordedAt: string,
    retried: ReadonlyMap<number, AppendResult>,
    optimistic: boolean
  ) => {
    const results: Array<AppendResult> = []
    const conflicts: Array<RevisionConflict> = []
    const planned: Array<{ readonly index: number; readonly current: number }> = []
    for (let index = 0; index < appends.length; index++) {
      const append = appends[index]!
      const done = retried.get(index)
      if (done !== undefined) {
        results.push(done)
        continue
      }
      // (only when it has events: inserting them is what would catch an existing stream)
      const head = optimistic && append.expected === "no_stream" && append.count > 0 ? heads.get(append.stream) : headOf(append.stream)
      const current = head === undefined ? -1 : head.revision
      if (!meetsExpectedRevision(append.expected, current)) {
        const retry = findRetry(request, append)
        if (retry !== undefined) results.push(retry)
        else conflicts.push({ stream: append.stream, expected: append.expected, actual: current === -1 ? "no_stream" : current })
        continue
      }
      results.push({ nextRevision: current, position: head === undefined ? -1 : head.position })
      if (append.count > 0) planned.push({ index, current })
    }
    if (conflicts.length > 0) return { outcome: { _tag: "Conflict", conflicts } as const, heads: [], written: 0 }
    // In the order given, so global positions follow it.
    const newHeads: Array<[string, Head]> = []
    let written = 0
    for (const { index, current } of planned) {
      const append = appends[index]!
      let position = 0
      const events = request.events
      try {
        for (let i = 0; i < append.count; i++) {
          const at = (append.first + i) * eventFields
          position = Number(statements.insert.run(
            events[at]!,
            append.stream,
            current + 1 + i,
            events[at + 1]!,
            events[at + 2]!,
            events[at + 3]!,
            recordedAt
          ).lastInsertRowid)
        }
      } catch (cause) {
        throw new InsertFailed(index, cause)
      }
      written += append.count
      const head = { revision: current + append.count, position }
      results[index] = { nextRevision: head.revision, position }
      newHeads.push([append.stream, head])
    }
    const flat = new Float64Array(results.length * 2)
    for (let i = 0; i < results.length; i++) {
      flat[2 * i] = results[i]!.nextRevision
      flat[2 * i + 1] = results[i]!.position
    }
    return { outcome: { _tag: "Appended", results: flat } as const, heads: newHeads, written }
  }

  /** One request, all or nothing; a clash on event ids that turns out to be a retry is retried without that append. */
  const applyRequest = (request: WriteRequest, recordedAt: string): { outcome: WriteOutcome; written: number } => {
    const appends = decode(request)
    // A single INSERT is atomic by itself; anything more needs a savepoint to be all-or-nothing.
    const several = appends.length > 1 || (appends[0]?.count ?? 0) > 1
    const retried = new Map<number, AppendResult>()
    // A stream expected absent is not looked up first: if it exists after all, inserting its revision
    // 0 fails on UNIQUE (stream, revision) (events are never deleted), and the request is then tried
    // again the careful way, which names the conflict. A shard's batch of new entities saves one
    // lookup per stream.
    let optimistic = true
    for (;;) {
      if (several) statements.savepoint.run()
      try {
        const attempt = tryRequest(request, appends, recordedAt, retried, optimistic)
        if (several) {
          if (attempt.outcome._tag === "Conflict") statements.rollbackToSavepoint.run()
          statements.releaseSavepoint.run()
        }
        for (const [stream, head] of attempt.heads) {
          if (heads.size >= maxCachedHeads) heads.clear()
          heads.set(stream, head)
        }
        return attempt
      } catch (error) {
        if (several && db.isTransaction) {
          statements.rollbackToSavepoint.run()
          statements.releaseSavepoint.run()
        }
        if (optimistic && db.isTransaction) {
          optimistic = false
          continue
        }
        const failed = error instanceof InsertFailed ? error : new InsertFailed(-1, error)
        const append = appends[failed.index]
        const retry = append !== undefined && db.isTransaction && !retried.has(failed.index) ? findRetry(request, append) : undefined
        if (retry === undefined) return { outcome: { _tag: "Failed", cause: cloneable(failed.cause) }, written: 0 }
        retried.set(failed.index, retry)
      }
    }
  }

  // The newest recordedAt in the file, cached like the heads (dropped when another connection commits).
  let lastRecordedAt: string | undefined = undefined
  /**
   * The time a transaction records: the wall clock, but never before the newest event already stored
   * (by any process), so recordedAt never decreases along the global order even when a clock steps
   * back or two processes' clocks disagree, and an asOf cut of the global order is a prefix of it.
   */
  const notBeforeLast = (now: string): string => {
    lastRecordedAt ??= statements.lastRecordedAt.get()?.recorded_at as string | undefined
    return lastRecordedAt !== undefined && Date.parse(lastRecordedAt) > Date.parse(now) ? lastRecordedAt : now
  }

  /** Commits a batch in one transaction; a failed COMMIT (or a transaction SQLite aborted) fails every request in it. */
  const commit = (batch: ReadonlyArray<WriteRequest>, now: string) => {
    const outcomes: Array<WriteOutcome> = []
    let written = 0
    try {
      statements.begin.run()
      const version = statements.dataVersion.get()?.data_version
      if (version !== seenVersion) {
        heads.clear() // another connection committed since our last transaction
        lastRecordedAt = undefined
        seenVersion = version
      }
      // Under the write lock (BEGIN IMMEDIATE): no other process can append between this read and the commit.
      const recordedAt = notBeforeLast(now)
      for (const request of batch) {
        const applied = applyRequest(request, recordedAt)
        outcomes.push(applied.outcome)
        written += applied.written
        if (!db.isTransaction) throw new Error("SQLite rolled the transaction back")
      }
      statements.commit.run()
      if (written > 0) lastRecordedAt = recordedAt
    } catch (cause) {
      heads.clear() // it may hold heads of the rolled-back transaction
      lastRecordedAt = undefined
      if (db.isTransaction) {
        try {
          statements.rollback.run()
        } catch {
          // the transaction is gone either way; the callers learn of the failure below
        }
      }
      return { _tag: "BatchFailed", cause: cloneable(cause) } as const
    }
    return { _tag: "Committed", outcomes, written } as const
  }

  return { commit }
}
