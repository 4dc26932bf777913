/**
 * Opening a SQLite file that another process holds locked in the way SQLite does not wait for (here a
 * busy timeout of 0 stands for that case): the opening statements are run again until the lock is
 * free, within a bound; anything but SQLITE_BUSY fails at once.
 */
import { assert, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { statSync } from "node:fs"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Effect } from "effect"
import { execOnOpen, walSizeLimitBytes } from "../../infra/sqliteOpen.ts"
import { tempDir } from "../fixtures/tempDir.ts"

/** A process holding an exclusive lock on `path` for `ms`; resolves once it holds it. */
const holdLocked = (path: string, ms: number) =>
  Effect.promise(() => new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", `
      const { DatabaseSync } = require("node:sqlite")
      const db = new DatabaseSync(${JSON.stringify(path)})
      db.exec("BEGIN EXCLUSIVE")
      console.log("locked")
      setTimeout(() => { db.exec("COMMIT"); db.close() }, ${ms})`], { stdio: ["ignore", "pipe", "inherit"] })
    child.stdout.once("data", () => resolve())
    child.once("exit", (code) => code === 0 ? undefined : reject(new Error(`lock holder exited ${code}`)))
  }))

it.live("runs the opening statements again while another process holds the file locked, then succeeds", () =>
  Effect.gen(function*() {
    const path = join(yield* tempDir("sqlite-open"), "shared.db")
    const setup = "PRAGMA journal_mode = WAL; CREATE TABLE IF NOT EXISTS t (x INTEGER)"
    new DatabaseSync(path).close()

    yield* holdLocked(path, 4_000)
    const plain = new DatabaseSync(path, { timeout: 0 })
    assert.throws(() => plain.exec(setup), /database is locked/)
    plain.close()

    const db = new DatabaseSync(path, { timeout: 0 })
    execOnOpen(db, setup)
    db.exec("INSERT INTO t VALUES (1)")
    assert.deepStrictEqual(db.prepare("SELECT count(*) AS n FROM t").get(), { n: 1 })
    db.close()
  }).pipe(Effect.scoped))

it.live("gives up after its bound, and fails at once on any other error", () =>
  Effect.gen(function*() {
    const dir = yield* tempDir("sqlite-open")
    const free = new DatabaseSync(join(dir, "free.db"))
    assert.throws(() => execOnOpen(free, "CREATE TABLE nonsense (", 60_000), /incomplete input|syntax error/)
    free.close()

    const path = join(dir, "shared.db")
    new DatabaseSync(path).close()
    yield* holdLocked(path, 10_000)
    const db = new DatabaseSync(path, { timeout: 0 })
    // still locked when it gives up: it did not wait for the lock
    assert.throws(() => execOnOpen(db, "CREATE TABLE IF NOT EXISTS t (x INTEGER)", 300), /database is locked/)
    db.close()
  }).pipe(Effect.scoped))

it.live("cuts a write-ahead log that grew while a reader held a snapshot back to its bound once the reader lets go", () =>
  Effect.gen(function*() {
    const path = join(yield* tempDir("sqlite-open"), "wal.db")
    const writer = new DatabaseSync(path)
    execOnOpen(writer, "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
    const reader = new DatabaseSync(path)
    execOnOpen(reader, "PRAGMA journal_mode = WAL")
    writer.exec("INSERT INTO t (v) VALUES ('first')")
    const held = reader.prepare("SELECT id FROM t").iterate()
    held.next() // an open read: no checkpoint can start the log over while it lasts
    const insert = writer.prepare("INSERT INTO t (v) VALUES (?)")
    const trim = writer.prepare("DELETE FROM t WHERE id < ?")
    const row = "x".repeat(64 * 1024)
    let id = 1
    const commits = (count: number) => {
      for (let i = 0; i < count; i++) {
        writer.exec("BEGIN")
        for (let j = 0; j < 8; j++) insert.run(row)
        id += 8
        trim.run(id - 64)
        writer.exec("COMMIT")
      }
    }
    const walBytes = () => statSync(`${path}-wal`).size
    commits(160) // ~85 MB through the log
    assert.isAbove(walBytes(), walSizeLimitBytes)
    held.return!()
    commits(20)
    assert.isAtMost(walBytes(), walSizeLimitBytes)
    reader.close()
    writer.close()
  }).pipe(Effect.scoped))
