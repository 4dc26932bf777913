/**
 * The embedded nats-server is supervised: SIGKILLed under running platform processes, it comes back
 * (one server, started by one of them) on the same store, and commands succeed again with no manual
 * step. It is spawned with only the environment it needs.
 */
import { assert, describe, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { freePort } from "../../infra/nats/NatsServer.ts"
import { eventually } from "../fixtures/http.ts"
import { call, isAlive, startPlatformProcess, stopProcess, waitUntilReady } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "nats-supervision-admin-key"

const pidOnFile = (dataDir: string) => {
  try {
    return Number(readFileSync(join(dataDir, "nats-server.pid"), "utf8").trim())
  } catch {
    return 0
  }
}

/** The pids of every nats-server running on this DATA_DIR's store (from /proc). */
const serversOn = (dataDir: string) =>
  readdirSync("/proc").filter((name) => /^\d+$/.test(name)).map(Number).filter((pid) => {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")
      return args.some((arg) => arg.endsWith("nats-server")) && args.includes(join(dataDir, "nats"))
    } catch {
      return false
    }
  })

/** Every nats-server left on the store when the test ends is SIGKILLed, should the test fail first. */
const killServersAtEnd = (dataDir: string) =>
  Effect.addFinalizer(() => Effect.sync(() => serversOn(dataDir).forEach((pid) => process.kill(pid, "SIGKILL"))))

const platformEnv = (dataDir: string) =>
  Effect.map(freePort(), (port) => ({ DATA_DIR: dataDir, ADMIN_API_KEY: ADMIN, NATS_PORT: String(port), SHARDS: "4" }))

const restarts = (logs: ReadonlyArray<string>) =>
  logs.map((log) => readFileSync(log, "utf8").split("\n").filter((line) => line.includes("restarted the nats-server, which had stopped")).length)

describe("the embedded nats-server", () => {
  it.live("is restarted after a SIGKILL, keeping its store, and commands succeed again", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("nats-supervised")
      yield* killServersAtEnd(dataDir)
      const platform = yield* startPlatformProcess(yield* platformEnv(dataDir), dataDir)
      yield* waitUntilReady(platform)
      const created = yield* call(platform.base, "PUT", "/v1/entities/advertiser/1", { key: ADMIN, body: { name: "Before" } })
      assert.strictEqual(created.status, 201, created.text)

      const original = pidOnFile(dataDir)
      process.kill(original, "SIGKILL")
      yield* eventually(Effect.sync(() => isAlive(original)), (alive) => !alive, "20 seconds")
      const replacement = yield* eventually(Effect.sync(() => pidOnFile(dataDir)), (pid) => pid !== original && isAlive(pid), "60 seconds")

      // The entity written before the kill is still there (same store), and it takes new commands.
      const patched = yield* eventually(
        call(platform.base, "PATCH", "/v1/entities/advertiser/1", { key: ADMIN, body: { name: "After" }, headers: { "idempotency-key": "after-restart" } }),
        (answer) => answer.status === 200,
        "90 seconds"
      )
      assert.strictEqual((patched.body as { revision: number }).revision, 1)
      const another = yield* call(platform.base, "PUT", "/v1/entities/advertiser/2", { key: ADMIN, body: { name: "New" } })
      assert.strictEqual(another.status, 201, another.text)
      yield* eventually(call(platform.base, "GET", "/ready", { key: ADMIN }), (answer) => answer.status === 200, "60 seconds")
      assert.deepStrictEqual(serversOn(dataDir), [replacement])
      assert.deepStrictEqual(restarts([platform.log]), [1])

      assert.strictEqual(yield* stopProcess(platform, "SIGTERM"), 0)
      yield* eventually(Effect.sync(() => isAlive(replacement)), (alive) => !alive, "20 seconds")
    }).pipe(Effect.scoped), { timeout: 240_000 })

  it.live("shared by two processes, comes back once: one of them restarts it and the other joins it", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("nats-supervised-two")
      yield* killServersAtEnd(dataDir)
      const env = yield* platformEnv(dataDir)
      const both = yield* Effect.all([startPlatformProcess(env, dataDir), startPlatformProcess(env, dataDir)])
      yield* Effect.forEach(both, waitUntilReady, { discard: true, concurrency: "unbounded" })

      const original = pidOnFile(dataDir)
      process.kill(original, "SIGKILL")
      yield* eventually(Effect.sync(() => isAlive(original)), (alive) => !alive, "20 seconds")
      yield* eventually(Effect.sync(() => pidOnFile(dataDir)), (pid) => pid !== original && isAlive(pid), "60 seconds")
      for (const [i, platform] of both.entries()) {
        yield* eventually(
          call(platform.base, "PUT", `/v1/entities/advertiser/${10 + i}`, { key: ADMIN, body: { name: "After" } }),
          (answer) => answer.status === 201,
          "90 seconds"
        )
      }
      assert.strictEqual(serversOn(dataDir).length, 1, "a single nats-server on the store")
      assert.deepStrictEqual(restarts(both.map((p) => p.log)).sort(), [0, 1], "exactly one process restarted it")
    }).pipe(Effect.scoped), { timeout: 240_000 })

  it.live("is spawned with PATH and its passwords only, not the platform's environment", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("nats-environ")
      yield* killServersAtEnd(dataDir)
      const platform = yield* startPlatformProcess({ ...(yield* platformEnv(dataDir)), SOME_CLOUD_SECRET: "do-not-leak" }, dataDir)
      yield* waitUntilReady(platform)
      const environ = readFileSync(`/proc/${pidOnFile(dataDir)}/environ`, "utf8").split("\0").filter((entry) => entry !== "")
      const names = environ.map((entry) => entry.slice(0, entry.indexOf("="))).sort()
      assert.deepStrictEqual(names, ["PATH", "TRIBUTARY_NATS_PASSWORD", "TRIBUTARY_NATS_READER_PASSWORD"])
      assert.isFalse(environ.some((entry) => entry.includes(ADMIN) || entry.includes("do-not-leak")))
      assert.strictEqual(yield* stopProcess(platform, "SIGTERM"), 0)
    }).pipe(Effect.scoped), { timeout: 120_000 })
})
