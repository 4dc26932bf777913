/**
 * `npm start` on its own: what it refuses at start, and what it leaves on disk. A real process, its
 * own nats-server, a fresh DATA_DIR.
 */
import { assert, describe, it } from "@effect/vitest"
import { lstatSync, mkdirSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Option } from "effect"
import { freePort } from "../../infra/nats/NatsServer.ts"
import { call, killServerAtEnd, startPlatformProcess, stopProcess, waitUntilReady } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "startup-admin-key-0123"

/** Every path under `dir` with its permission bits (files that vanish while walking are skipped). */
const modesUnder = (dir: string): Array<{ readonly path: string; readonly dir: boolean; readonly mode: number }> =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    try {
      const stat = lstatSync(path)
      const entry = { path, dir: stat.isDirectory(), mode: stat.mode & 0o777 }
      return stat.isDirectory() ? [entry, ...modesUnder(path)] : [entry]
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return []
      throw error
    }
  })

describe("npm start", () => {
  it.live("refuses an ADMIN_API_KEY shorter than 16 characters: a non-zero exit naming the setting, never showing the key", () =>
    Effect.gen(function*() {
      const logs = yield* tempDir("startup-logs")
      const dataDir = join(yield* tempDir("startup"), "data")
      const platform = yield* startPlatformProcess({ DATA_DIR: dataDir, ADMIN_API_KEY: "fifteen-chars-x", NATS_PORT: String(yield* freePort()) }, logs)
      const code = yield* Effect.promise(() => platform.exited).pipe(Effect.timeoutOption("60 seconds"))
      assert.isTrue(Option.isSome(code), "it exited by itself")
      assert.notStrictEqual(Option.getOrThrow(code), 0)
      assert.isNotNull(Option.getOrThrow(code), "not by a signal")
      const log = readFileSync(platform.log, "utf8")
      assert.include(log, "ADMIN_API_KEY")
      assert.include(log, "at least 16 characters")
      assert.notInclude(log, "fifteen-chars-x")
    }))

  it.live("makes DATA_DIR 0700 and creates everything in it private: SQLite files, password files, the nats-server's store, pid and log", () =>
    Effect.gen(function*() {
      const logs = yield* tempDir("startup-logs")
      const dataDir = join(yield* tempDir("startup"), "data")
      mkdirSync(dataDir, { mode: 0o755 }) // made by an operator, readable by everyone
      yield* killServerAtEnd(dataDir)
      const platform = yield* startPlatformProcess({ DATA_DIR: dataDir, ADMIN_API_KEY: ADMIN, NATS_PORT: String(yield* freePort()) }, logs)
      yield* waitUntilReady(platform)
      // an event, a reminder-free entity and a key: every store has written
      const created = yield* call(platform.base, "PUT", "/v1/entities/advertiser/1", { key: ADMIN, body: { name: "Private" } })
      assert.strictEqual(created.status, 201, created.text)
      const key = yield* call(platform.base, "POST", "/v1/admin/keys", { key: ADMIN, body: { name: "svc", role: "service" } })
      assert.strictEqual(key.status, 201, key.text)

      assert.strictEqual(lstatSync(dataDir).mode & 0o777, 0o700, "DATA_DIR")
      const entries = modesUnder(dataDir)
      const names = entries.map((e) => e.path.slice(dataDir.length + 1))
      for (const expected of ["events.db", "events.db-wal", "keys.db", "readmodel.db", "reminders.db", "nats-platform.password", "nats-reader.password", "nats-server.pid", "nats-server.log", "nats"]) {
        assert.include(names, expected)
      }
      assert.isTrue(names.some((name) => name.startsWith("nats/jetstream/")), "the JetStream store is there")
      const open = entries.filter((e) => e.mode !== (e.dir ? 0o700 : 0o600)).map((e) => `${e.path.slice(dataDir.length + 1)} ${e.mode.toString(8)}`)
      assert.deepStrictEqual(open, [], "readable or writable by others")
      assert.strictEqual(yield* stopProcess(platform, "SIGTERM"), 0)
    }), 120_000)
})
