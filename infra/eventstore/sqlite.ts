/**
 * The embedded event store: one SQLite file through `node:sqlite`.
 *
 * Appends are queued and one writer fiber commits everything pending in one transaction (group commit),
 * so the fsync that makes an append durable is shared by every append that arrived meanwhile.
 * Each append runs inside its own SAVEPOINT, so a conflict or error rolls back only that append.
 */
import { DatabaseSync } from "node:sqlite"
import type { SQLOutputValue } from "node:sqlite"
import { prepare, schema } from "./sqliteStatements.ts"
import { Cause, Clock, Deferred, Effect, Exit, Layer, Option, Queue, Stream } from "effect"
import {
  EventStore,
  EventStoreError,
  WrongExpectedRevision
} from "../../domain/EventStore.ts"
import type {
  AppendResult,
  EventData,
  ExpectedRevision,
  ReadAllOptions,
  ReadStreamOptions,
  RecordedEvent,
  SubscribeToAllOptions
} from "../../domain/EventStore.ts"

export interface SqliteOptions {
  readonly path: string
  /** Called after each committed transaction with how many events it held (instrumentation, e.g. the bench). */
  readonly onCommit?: (events: number) => void
}

/** At most this many appends share one transaction; bounds the time one commit holds the write lock. */
const maxBatch = 1024
/** Appends waiting for the writer; a full queue suspends callers (backpressure). */
const queueCapacity = 16_384
/** Stream heads kept in memory by the writer (the cache starts over when full). */
const maxCachedHeads = 100_000
/** Page size of a subscription's catch-up reads. */
const pageSize = 500
/** How often a live subscription looks for appends made by another process on the same file. */
const pollInterval = "25 millis"
const endOfStream = Number.MAX_SAFE_INTEGER


type Reply = Deferred.Deferred<AppendResult, WrongExpectedRevision | EventStoreError>
type AppendExit = Exit.Exit<AppendResult, WrongExpectedRevision | EventStoreError>

interface PendingAppend {
  readonly stream: string
  readonly events: ReadonlyArray<EventData>
  readonly expected: ExpectedRevision
  readonly reply: Reply
}

const toRecorded = (row: Record<string, SQLOutputValue>): RecordedEvent => ({
  eventId: row.event_id as string,
  stream: row.stream as string,
  type: row.type as string,
  revision: row.revision as number,
  position: row.position as number,
  recordedAt: row.recorded_at as string,
  data: JSON.parse(row.data as string),
  metadata: JSON.parse(row.metadata as string)
})

/** Does a stream whose last revision is `current` (-1 = absent) satisfy `expected`? */
const satisfies = (expected: ExpectedRevision, current: number): boolean =>
  expected === "any" ||
  (expected === "no_stream" ? current === -1 : expected === "stream_exists" ? current >= 0 : current === expected)

const failWith = (operation: string) => (cause: unknown) => new EventStoreError({ operation, cause })

/** Opens (creating if needed) the store at `path`; closes the file when the scope closes. */
export const makeSqlite = Effect.fnUntraced(function*(options: SqliteOptions) {
  const db = yield* Effect.acquireRelease(
    Effect.try({
      try: () => {
        // busy_timeout: another process holding the write lock makes us wait rather than fail at once.
        const db = new DatabaseSync(options.path, { timeout: 5_000 })
        // WAL: readers (subscriptions, other processes) never block the writer nor see partial commits.
        // synchronous=FULL: the WAL is fsynced at every commit, so an acknowledged append survives power
        // loss (DESIGN: acknowledged only once on disk). NORMAL would fsync only at checkpoints and could
        // lose the last acknowledged appends; group commit amortises the fsync, and bench/eventStore.ts
        // measures the adapter against raw inserts with the same setting.
        db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;")
        db.exec(schema)
        return db
      },
      catch: failWith("open")
    }),
    (db) => Effect.sync(() => db.close())
  )
  const statements = yield* Effect.try({ try: () => prepare(db), catch: failWith("prepare") })
  const clock = yield* Clock.Clock

  // Wakes live subscriptions in this process right after a commit: replaced by a fresh one each time.
  let committed = Deferred.makeUnsafe<void>()
  const notifyCommitted = () => {
    const previous = committed
    committed = Deferred.makeUnsafe<void>()
    Deferred.doneUnsafe(previous, Exit.void)
  }

  /** An append whose events are already stored right where it would put them is a retry: it succeeds. */
  const findRetry = (append: PendingAppend): AppendResult | undefined => {
    const first = statements.byEventId.get(append.events[0]!.eventId)
    if (first === undefined || first.stream !== append.stream) return undefined
    const revision = first.revision as number
    const expected = append.expected
    if (typeof expected === "number" ? revision !== expected + 1 : expected === "no_stream" && revision !== 0) {
      return undefined
    }
    const stored = statements.streamForwards.all(append.stream, revision, append.events.length)
    if (stored.length !== append.events.length) return undefined
    for (let i = 0; i < stored.length; i++) {
      if (stored[i]!.event_id !== append.events[i]!.eventId) return undefined
    }
    const last = stored[stored.length - 1]!
    return { nextRevision: last.revision as number, position: last.position as number }
  }

  // Stream heads this writer knows, so an append costs no lookup. Valid while no other connection
  // writes: `data_version` changes when one commits, and then the cache is dropped (see commitBatch).
  const heads = new Map<string, { readonly revision: number; readonly position: number }>()
  let seenVersion: unknown = undefined
  const headOf = (stream: string) => {
    const cached = heads.get(stream)
    if (cached !== undefined) return cached
    const row = statements.streamHead.get(stream)
    return row === undefined ? undefined : { revision: row.revision as number, position: row.position as number }
  }

  let writtenInBatch = 0
  const appendOne = (append: PendingAppend, recordedAt: string): AppendExit => {
    const head = headOf(append.stream)
    const current = head === undefined ? -1 : head.revision
    const events = append.events
    if (!satisfies(append.expected, current)) {
      const retry = events.length > 0 ? findRetry(append) : undefined
      if (retry !== undefined) return Exit.succeed(retry)
      return Exit.fail(new WrongExpectedRevision({
        stream: append.stream,
        expected: append.expected,
        actual: current === -1 ? "no_stream" : current
      }))
    }
    if (events.length === 0) {
      return Exit.succeed({ nextRevision: current, position: head === undefined ? -1 : head.position })
    }
    // A single INSERT is atomic by itself; several need a savepoint to be all-or-nothing.
    const several = events.length > 1
    if (several) statements.savepoint.run()
    let position = 0
    try {
      for (let i = 0; i < events.length; i++) {
        const event = events[i]!
        position = Number(statements.insert.run(
          event.eventId,
          append.stream,
          current + 1 + i,
          event.type,
          JSON.stringify(event.data),
          JSON.stringify(event.metadata),
          recordedAt
        ).lastInsertRowid)
      }
    } catch (cause) {
      if (several && db.isTransaction) {
        statements.rollbackToSavepoint.run()
        statements.releaseSavepoint.run()
      }
      const retry = db.isTransaction ? findRetry(append) : undefined
      return retry !== undefined ? Exit.succeed(retry) : Exit.fail(new EventStoreError({ operation: "appendToStream", cause }))
    }
    if (several) statements.releaseSavepoint.run()
    writtenInBatch += events.length
    if (heads.size >= maxCachedHeads) heads.clear()
    heads.set(append.stream, { revision: current + events.length, position })
    return Exit.succeed({ nextRevision: current + events.length, position })
  }

  /** Commits a batch in one transaction; a failed COMMIT (or a transaction SQLite aborted) fails every append in it. */
  const commitBatch = (batch: ReadonlyArray<PendingAppend>) => {
    const recordedAt = new Date(clock.currentTimeMillisUnsafe()).toISOString()
    const exits: Array<AppendExit> = []
    writtenInBatch = 0
    let failure: EventStoreError | undefined
    try {
      statements.begin.run()
      const version = statements.dataVersion.get()?.data_version
      if (version !== seenVersion) {
        heads.clear() // another connection committed since our last transaction
        seenVersion = version
      }
      for (const append of batch) {
        exits.push(appendOne(append, recordedAt))
        if (!db.isTransaction) throw new Error("SQLite rolled the transaction back")
      }
      statements.commit.run()
    } catch (cause) {
      failure = new EventStoreError({ operation: "appendToStream", cause })
      heads.clear() // it may hold heads of the rolled-back transaction
      if (db.isTransaction) {
        try {
          statements.rollback.run()
        } catch {
          // the transaction is gone either way; the callers learn of the failure below
        }
      }
    }
    if (failure === undefined) {
      notifyCommitted()
      options.onCommit?.(writtenInBatch)
    }
    for (let i = 0; i < batch.length; i++) {
      Deferred.doneUnsafe(batch[i]!.reply, failure === undefined ? exits[i]! : Exit.fail(failure))
    }
  }

  const queue = yield* Queue.bounded<PendingAppend, Cause.Done>(queueCapacity)
  // Released after the writer stops: appends still queued learn the store closed instead of waiting forever.
  yield* Effect.addFinalizer(() =>
    Queue.end(queue).pipe(
      Effect.andThen(Queue.clear(queue)),
      Effect.map((pending) => {
        for (const append of pending) {
          Deferred.doneUnsafe(append.reply, Exit.fail(new EventStoreError({ operation: "appendToStream", cause: "the event store closed" })))
        }
      }),
      Effect.ignore
    )
  )
  // Waiting for appends is interruptible; a batch once taken is committed and answered before the
  // writer may stop, so no caller is left waiting on an append that was dequeued.
  yield* Effect.forkScoped(Effect.forever(Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(restore(Queue.takeBetween(queue, 1, maxBatch)), (batch) => Effect.sync(() => commitBatch(batch)))
  )))

  const read = <A>(operation: string, f: () => A) => Effect.try({ try: f, catch: failWith(operation) })

  const readStream = (stream: string, options: ReadStreamOptions = {}) =>
    read("readStream", () => {
      const limit = options.maxCount ?? -1
      const rows = options.direction === "backwards"
        ? statements.streamBackwards.all(stream, options.fromRevision ?? endOfStream, limit)
        : statements.streamForwards.all(stream, options.fromRevision ?? 0, limit)
      return rows.map(toRecorded)
    })

  const readAll = (options: ReadAllOptions = {}) =>
    read("readAll", () => {
      const limit = options.maxCount ?? -1
      const rows = options.direction === "backwards"
        ? statements.allBackwards.all(options.fromPosition ?? endOfStream, limit)
        : statements.allForwards.all(options.fromPosition ?? 0, limit)
      return rows.map(toRecorded)
    })

  // Pages through everything after the checkpoint; when caught up, waits for a local commit or the poll
  // interval, whichever first. Positions only grow in commit order, so `position > last` never skips.
  const subscribeToAll = (options: SubscribeToAllOptions = {}): Stream.Stream<RecordedEvent, EventStoreError> =>
    Stream.paginate(options.after ?? 0, (last: number) =>
      Effect.suspend(() => {
        const wake = committed // taken before reading, so a commit after the read still wakes us
        return read("subscribeToAll", () => statements.allForwards.all(last + 1, pageSize).map(toRecorded)).pipe(
          Effect.flatMap((page) =>
            page.length > 0
              ? Effect.succeed([page, Option.some(page[page.length - 1]!.position)] as const)
              : Deferred.await(wake).pipe(
                Effect.timeoutOption(pollInterval),
                Effect.as([[] as ReadonlyArray<RecordedEvent>, Option.some(last)] as const)
              )
          )
        )
      }))

  return EventStore.of({
    appendToStream: (stream, events, expected) =>
      Effect.suspend(() => {
        const reply: Reply = Deferred.makeUnsafe()
        return Effect.flatMap(
          Queue.offer(queue, { stream, events, expected, reply }),
          (accepted) =>
            accepted
              ? Deferred.await(reply)
              : Effect.fail(new EventStoreError({ operation: "appendToStream", cause: "the event store is closed" }))
        )
      }),
    readStream,
    readAll,
    subscribeToAll,
    headPosition: read("headPosition", () => {
      const position = statements.head.get()?.position
      return position == null ? undefined : position as number
    })
  })
})

/** The event store on a SQLite file at `path`. */
export const layerSqlite = (options: SqliteOptions): Layer.Layer<EventStore, EventStoreError> =>
  Layer.effect(EventStore, makeSqlite(options))
