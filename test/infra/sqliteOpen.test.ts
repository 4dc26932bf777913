/**
 * Opening a SQLite file that another process holds locked in the way SQLite does not wait for (here a
 * busy timeout of 0 stands for that case): the opening statements are run again until the lock is
 * free, within a bound; anything but SQLITE_BUSY fails at once.
 */
import { assert, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Effect } from "effect"
import { execOnOpen } from "../../infra/sqliteOpen.ts"
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
