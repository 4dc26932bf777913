/**
 * Reminders in a SQLite file (`DATA_DIR/reminders.db`), shared by the platform processes of one machine.
 *
 * Writes (set, cancel, fired, postpone) are queued and one writer fiber commits everything pending in
 * one transaction (group commit): `synchronous=FULL` fsyncs every commit, and a shard applying a batch
 * of thousands of commands may set thousands of reminders at once; they share one fsync instead of
 * paying one each. A write's effect returns only once its transaction is committed.
 * Reads go straight to the file: the writer's transactions are synchronous, so reads never see half of one.
 */
import { randomInt } from "node:crypto"
import { DatabaseSync } from "node:sqlite"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Option, PubSub, Queue, Schema, Stream } from "effect"
import { Reminder, Reminders, RemindersError } from "../../domain/Reminders.ts"
import { migrate, prepare, schema } from "./sqliteStatements.ts"
import type { Statements } from "./sqliteStatements.ts"
import { execOnOpen } from "../sqliteOpen.ts"

export interface SqliteOptions {
  readonly path: string
}

/** At most this many writes share one transaction; bounds how long one commit holds the write lock. */
const maxBatch = 1024
/** Writes waiting for the writer; a full queue suspends callers (backpressure). */
const queueCapacity = 16_384

type Write =
  | { readonly _tag: "set"; readonly reminder: Reminder }
  | { readonly _tag: "cancel"; readonly entityType: string; readonly entityId: string }
  | { readonly _tag: "fired"; readonly reminder: Reminder }
  | { readonly _tag: "postpone"; readonly reminder: Reminder; readonly until: number }
type Pending = Write & { readonly reply: Deferred.Deferred<void, RemindersError> }

const failWith = (operation: string) => (cause: unknown) => new RemindersError({ operation, cause })

/** Rows come from a file other processes (and other versions) write: decoded, not trusted. */
const Row = Schema.Struct({
  entity_type: Schema.String,
  entity_id: Schema.String,
  shard: Schema.Int,
  due_at: Schema.Int,
  attempt_at: Schema.Int,
  token: Schema.NullOr(Schema.Int)
})
type Row = typeof Row.Type
const decodeRow = Schema.decodeUnknownSync(Row)
const decodeReminder = Schema.decodeUnknownEffect(Reminder)

const apply = (statements: Statements, write: Write) => {
  switch (write._tag) {
    case "set": {
      const r = write.reminder
      statements.set.run(r.entityType, r.entityId, r.shard, r.dueAt, r.dueAt, r.token ?? null)
      return
    }
    case "cancel":
      statements.cancel.run(write.entityType, write.entityId)
      return
    case "fired": {
      const r = write.reminder
      statements.fired.run(r.entityType, r.entityId, r.dueAt, r.token ?? null)
      return
    }
    case "postpone": {
      const r = write.reminder
      statements.postpone.run(write.until, r.entityType, r.entityId, r.dueAt, r.token ?? null)
      return
    }
  }
}

/** Commits the writes in one transaction: all of them, or (on an I/O error) none. */
const commit = (statements: Statements, writes: ReadonlyArray<Write>): Exit.Exit<void, RemindersError> => {
  try {
    // IMMEDIATE takes the write lock up front, so busy_timeout applies when another process holds it.
    statements.begin.run()
    try {
      for (const write of writes) apply(statements, write)
      statements.commit.run()
      return Exit.void
    } catch (cause) {
      statements.rollback.run()
      throw cause
    }
  } catch (cause) {
    return Exit.fail(new RemindersError({ operation: "commit", cause }))
  }
}

/** Opens (creating if needed) the store at `path`; the file closes with the scope, after pending writes commit. */
export const makeSqlite = Effect.fnUntraced(function*(options: SqliteOptions) {
  const db = yield* Effect.acquireRelease(
    Effect.try({
      try: () => {
        // busy_timeout: another process holding the write lock makes us wait rather than fail at once.
        const db = new DatabaseSync(options.path, { timeout: 5_000 })
        // WAL: readers in other processes never block the writer. synchronous=FULL: the WAL is fsynced
        // at every commit, so a reminder is on disk once `set` returns (NORMAL could lose the last ones).
        execOnOpen(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;")
        execOnOpen(db, schema)
        migrate(db)
        return db
      },
      catch: failWith("open")
    }),
    (db) => Effect.sync(() => db.close())
  )
  const statements = yield* Effect.try({ try: () => prepare(db), catch: failWith("prepare") })
  const changes = yield* PubSub.unbounded<Reminder>()
  const queue = yield* Queue.bounded<Pending, Cause.Done>(queueCapacity)

  const writer = yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
    const batch = yield* Queue.takeBetween(queue, 1, maxBatch)
    const exit = commit(statements, batch)
    for (const write of batch) Deferred.doneUnsafe(write.reply, exit)
    if (Exit.isSuccess(exit)) {
      for (const write of batch) if (write._tag === "set") PubSub.publishUnsafe(changes, write.reminder)
    }
  })).pipe(Effect.catch(() => Effect.void))) // Cause.Done: the queue ended and is drained
  // Ending the queue lets the writer commit what is already queued; later writes fail (closed).
  yield* Effect.addFinalizer(() => Queue.end(queue).pipe(Effect.andThen(Fiber.join(writer)), Effect.andThen(PubSub.shutdown(changes))))

  const enqueue = (operation: string, write: Write) =>
    Effect.gen(function*() {
      const reply = Deferred.makeUnsafe<void, RemindersError>()
      const accepted = yield* Queue.offer(queue, { ...write, reply })
      if (!accepted) return yield* new RemindersError({ operation, cause: "the reminder store is closed" })
      return yield* Deferred.await(reply)
    })
  const read = <A>(operation: string, f: () => A) => Effect.try({ try: f, catch: failWith(operation) })

  return Reminders.of({
    set: (reminder) =>
      decodeReminder(reminder).pipe(
        Effect.mapError(failWith("set")),
        // a setting of its own: fires of an earlier one, even for the same instant, leave it be
        Effect.flatMap((reminder) => enqueue("set", { _tag: "set", reminder: { ...reminder, token: randomInt(2 ** 47) } }))
      ),
    cancel: (entityType, entityId) => enqueue("cancel", { _tag: "cancel", entityType, entityId }),
    fired: (reminder) => enqueue("fired", { _tag: "fired", reminder }),
    postpone: (reminder, until) => enqueue("postpone", { _tag: "postpone", reminder, until: Math.trunc(until) }),
    // One index range per shard (each already in attempt order), merged here: SQLite would sort the
    // union of all shards' due rows before applying the limit.
    due: (shards, now, limit) =>
      read("due", () => {
        const rows: Array<Row> = []
        for (const shard of shards) {
          for (const row of statements.due.all(shard, Math.trunc(now), limit)) rows.push(decodeRow(row))
        }
        return rows.sort(byAttempt).slice(0, limit).map((row): Reminder => ({
          entityType: row.entity_type,
          entityId: row.entity_id,
          shard: row.shard,
          dueAt: row.due_at,
          ...(row.token === null ? {} : { token: row.token })
        }))
      }),
    next: (shards) =>
      read("next", () => {
        let earliest: number | undefined
        for (const shard of shards) {
          const row = statements.next.get(shard)
          const at = row === undefined ? undefined : Number(row.attempt_at)
          if (at !== undefined && (earliest === undefined || at < earliest)) earliest = at
        }
        return Option.fromUndefinedOr(earliest)
      }),
    changes: Stream.fromPubSub(changes)
  })
})

/** The order of each shard's index range, so merging shards gives one stable order everywhere. */
const byAttempt = (a: Row, b: Row) =>
  a.attempt_at - b.attempt_at || a.due_at - b.due_at ||
  compare(a.entity_type, b.entity_type) || compare(a.entity_id, b.entity_id)

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/** The Reminders service on a SQLite file at `path`. */
export const layerSqlite = (options: SqliteOptions) => Layer.effect(Reminders, makeSqlite(options))
