/**
 * The embedded event store: one SQLite file through `node:sqlite`.
 *
 * Writes happen on a writer thread (sqliteWriterThread.ts) that owns the write connection, so an fsync
 * or a wait for another process's write lock never blocks this thread's event loop. Appends are queued
 * here and one writer fiber sends everything pending as one batch, which the thread commits in one
 * transaction (group commit): the fsync that makes an append durable is shared by every append that
 * arrived meanwhile. Reads use a connection of this thread: in WAL mode readers never wait for the writer.
 */
import { DatabaseSync } from "node:sqlite"
import type { SQLOutputValue } from "node:sqlite"
import { prepare, schema } from "./sqliteStatements.ts"
import { startWriter } from "./sqliteWriterClient.ts"
import { encodeRequest } from "./sqliteWriterProtocol.ts"
import type { WriteOutcome, WriteRequest } from "./sqliteWriterProtocol.ts"
import { Cause, Clock, Deferred, Effect, Exit, Layer, Option, Queue, Stream } from "effect"
import {
  EventStore,
  EventStoreError,
  repeatedStream,
  WrongExpectedRevision,
  WrongExpectedRevisions
} from "../../domain/EventStore.ts"
import { execOnOpen } from "../sqliteOpen.ts"
import type {
  AppendResult,
  ReadAllOptions,
  ReadStreamOptions,
  RecordedEvent,
  StreamAppend,
  SubscribeToAllOptions
} from "../../domain/EventStore.ts"

export interface SqliteOptions {
  readonly path: string
  /** Called after each committed transaction with how many events it held (instrumentation, e.g. the bench). */
  readonly onCommit?: (events: number) => void
  /** ms an append waits for another process's write lock before failing; default 5,000 */
  readonly busyTimeout?: number
}

/** At most this many appends share one transaction; bounds the time one commit holds the write lock. */
const maxBatch = 1024
/** Appends waiting for the writer; a full queue suspends callers (backpressure). */
const queueCapacity = 16_384
/** Page size of a subscription's catch-up reads: at most this many events, and past the first, at most `pageMaxChars` of their data and metadata. */
const pageSize = 500
/**
 * Events are as large as their commands made them (~600 KB for an `Apply` of 2,000 records): a page of 500
 * was 64 MB held for each slow follower of `/v1/history/stream` (stop 28's outside attack: 50 of them, +2.3 GB).
 */
const pageMaxChars = 4 * 1024 * 1024
/**
 * How often a live subscription looks for appends made by another process on the same file: every
 * `busyPollMillis` after something came, backing off to every `idlePollMillis` while nothing does.
 */
const busyPollMillis = 25
const idlePollMillis = 200
const endOfStream = Number.MAX_SAFE_INTEGER

interface PendingWrite {
  readonly request: WriteRequest
  readonly operation: "appendToStream" | "appendToStreams"
  readonly reply: Deferred.Deferred<WriteOutcome, EventStoreError>
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

const toResults = (flat: Float64Array): Array<AppendResult> => {
  const results = new Array<AppendResult>(flat.length / 2)
  for (let i = 0; i < results.length; i++) results[i] = { nextRevision: flat[2 * i]!, position: flat[2 * i + 1]! }
  return results
}

const failWith = (operation: string) => (cause: unknown) => new EventStoreError({ operation, cause })

/** Opens (creating if needed) the store at `path`; closes the file and stops the writer thread when the scope closes. */
export const makeSqlite = Effect.fnUntraced(function*(options: SqliteOptions) {
  const busyTimeout = options.busyTimeout ?? 5_000
  const db = yield* Effect.acquireRelease(
    Effect.try({
      try: () => {
        const db = new DatabaseSync(options.path, { timeout: busyTimeout })
        // WAL: readers (subscriptions, other processes) never block the writer nor see partial commits.
        execOnOpen(db, `PRAGMA journal_mode = WAL; PRAGMA busy_timeout = ${busyTimeout};`)
        execOnOpen(db, schema)
        return db
      },
      catch: failWith("open")
    }),
    (db) => Effect.sync(() => db.close())
  )
  // Then the writer thread, on a file that now has its table. The store is open once the thread is:
  // a platform that answers /ready takes writes at once, not after a thread boots under its first one.
  const writer = yield* startWriter({ path: options.path, busyTimeout })
  yield* writer.opened
  const statements = yield* Effect.try({ try: () => prepare(db), catch: failWith("prepare") })
  const clock = yield* Clock.Clock

  // Wakes live subscriptions in this process right after a commit: replaced by a fresh one each time.
  let committed = Deferred.makeUnsafe<void>()
  const notifyCommitted = () => {
    const previous = committed
    committed = Deferred.makeUnsafe<void>()
    Deferred.doneUnsafe(previous, Exit.void)
  }

  /** Sends a batch to the writer thread and answers each caller; a failed transaction fails them all. */
  const commitBatch = (batch: ReadonlyArray<PendingWrite>) =>
    Effect.suspend(() => writer.commit(batch.map((p) => p.request), new Date(clock.currentTimeMillisUnsafe()).toISOString())).pipe(
      Effect.map((answer) => {
        if (answer._tag === "Committed") {
          notifyCommitted()
          options.onCommit?.(answer.written)
        }
        for (let i = 0; i < batch.length; i++) {
          const pending = batch[i]!
          Deferred.doneUnsafe(pending.reply, answer._tag === "Committed"
            ? Exit.succeed(answer.outcomes[i]!)
            : Exit.fail(new EventStoreError({ operation: pending.operation, cause: answer.cause })))
        }
      })
    )

  const queue = yield* Queue.bounded<PendingWrite, Cause.Done>(queueCapacity)
  // Released after the writer fiber stops: appends still queued learn the store closed instead of waiting forever.
  yield* Effect.addFinalizer(() =>
    Queue.end(queue).pipe(
      Effect.andThen(Queue.clear(queue)),
      Effect.map((pending) => {
        for (const write of pending) {
          Deferred.doneUnsafe(write.reply, Exit.fail(new EventStoreError({ operation: write.operation, cause: "the event store closed" })))
        }
      }),
      Effect.ignore
    )
  )
  // Waiting for appends is interruptible; a batch once taken is committed and answered before the
  // writer may stop, so no caller is left waiting on an append that was dequeued.
  yield* Effect.forkScoped(Effect.forever(Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(restore(Queue.takeBetween(queue, 1, maxBatch)), commitBatch)
  )))

  /** Queues the appends (serialised here, where a value JSON cannot hold fails only its caller) and waits for the outcome. */
  const write = (operation: PendingWrite["operation"], appends: Parameters<typeof encodeRequest>[0]) =>
    Effect.flatMap(Effect.try({ try: () => encodeRequest(appends), catch: failWith(operation) }), (request) => {
      const reply = Deferred.makeUnsafe<WriteOutcome, EventStoreError>()
      return Effect.flatMap(
        Queue.offer(queue, { request, operation, reply }),
        (accepted) =>
          accepted
            ? Deferred.await(reply)
            : Effect.fail(new EventStoreError({ operation, cause: "the event store is closed" }))
      )
    })

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
  // The interval doubles while nothing comes (up to `idlePollMillis`) and is short again after a page:
  // an idle platform's subscriptions would otherwise keep it allocating enough that V8 never finds it
  // idle enough to give memory back.
  const subscribeToAll = (options: SubscribeToAllOptions = {}): Stream.Stream<RecordedEvent, EventStoreError> =>
    Stream.paginate({ last: options.after ?? 0, poll: busyPollMillis }, ({ last, poll }) =>
      Effect.suspend(() => {
        const wake = committed // taken before reading, so a commit after the read still wakes us
        return read("subscribeToAll", () => {
          const page: Array<RecordedEvent> = []
          let chars = 0
          for (const row of statements.allForwards.iterate(last + 1, pageSize)) {
            page.push(toRecorded(row))
            chars += (row.data as string).length + (row.metadata as string).length
            if (chars >= pageMaxChars) break
          }
          return page
        }).pipe(
          Effect.flatMap((page) =>
            page.length > 0
              ? Effect.succeed([page, Option.some({ last: page[page.length - 1]!.position, poll: busyPollMillis })] as const)
              : Deferred.await(wake).pipe(
                Effect.timeoutOption(poll),
                Effect.map((woken) => [[] as ReadonlyArray<RecordedEvent>, Option.some({ last, poll: Option.isSome(woken) ? busyPollMillis : Math.min(poll * 2, idlePollMillis) })] as const)
              )
          )
        )
      }))

  return EventStore.of({
    appendToStream: (stream, events, expected) =>
      Effect.flatMap(write("appendToStream", [{ stream, events, expected }]), (outcome): Effect.Effect<AppendResult, WrongExpectedRevision | EventStoreError> => {
        switch (outcome._tag) {
          case "Appended":
            return Effect.succeed({ nextRevision: outcome.results[0]!, position: outcome.results[1]! })
          case "Conflict":
            return Effect.fail(new WrongExpectedRevision(outcome.conflicts[0]!))
          case "Failed":
            return Effect.fail(new EventStoreError({ operation: "appendToStream", cause: outcome.cause }))
        }
      }),
    appendToStreams: (appends: ReadonlyArray<StreamAppend>) => {
      if (appends.length === 0) return Effect.succeed([])
      const repeated = repeatedStream(appends)
      if (repeated !== undefined) return Effect.die(new Error(`appendToStreams: stream ${repeated} appears more than once`))
      const request = appends.map((a) => ({ stream: a.stream, events: a.events, expected: a.expectedRevision }))
      return Effect.flatMap(write("appendToStreams", request), (outcome): Effect.Effect<ReadonlyArray<AppendResult>, WrongExpectedRevisions | EventStoreError> => {
        switch (outcome._tag) {
          case "Appended":
            return Effect.succeed(toResults(outcome.results))
          case "Conflict":
            return Effect.fail(new WrongExpectedRevisions({ conflicts: [outcome.conflicts[0]!, ...outcome.conflicts.slice(1)] }))
          case "Failed":
            return Effect.fail(new EventStoreError({ operation: "appendToStreams", cause: outcome.cause }))
        }
      })
    },
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
