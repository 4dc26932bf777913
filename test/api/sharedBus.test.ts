/**
 * `npm start` twice on one DATA_DIR: the second process joins the first one's nats-server and event
 * store instead of stopping them, and the bus stays up until the last process stops.
 */
import { assert, describe, it } from "@effect/vitest"
import { readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { freePort } from "../../infra/nats/NatsServer.ts"
import { eventually } from "../fixtures/http.ts"
import { call, isAlive, killServerAtEnd, startPlatformProcess, stopProcess, waitUntilReady } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "shared-bus-admin"

/** The embedded nats-server's pid, from its pid file; SIGKILLed when the test ends, should it outlive it. */
const serverPid = (dataDir: string) =>
  Effect.acquireRelease(
    Effect.sync(() => Number(readFileSync(join(dataDir, "nats-server.pid"), "utf8").trim())),
    (pid) => Effect.sync(() => isAlive(pid) && process.kill(pid, "SIGKILL"))
  )

describe("npm start on a DATA_DIR already in use", () => {
  it.live("joins the running platform's nats-server, which stays up through a SIGKILL, and the last process to stop stops it", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("shared-bus")
      yield* killServerAtEnd(dataDir)
      const env = { DATA_DIR: dataDir, ADMIN_API_KEY: ADMIN, NATS_PORT: String(yield* freePort()), SHARDS: "8" }
      const first = yield* startPlatformProcess(env, dataDir)
      yield* waitUntilReady(first)
      const server = yield* serverPid(dataDir)
      assert.isTrue(isAlive(server))
      assert.strictEqual(statSync(join(dataDir, "nats-platform.password")).mode & 0o777, 0o600, "the platform's password is kept, private")

      const second = yield* startPlatformProcess(env, dataDir)
      yield* waitUntilReady(second)
      assert.strictEqual(Number(readFileSync(join(dataDir, "nats-server.pid"), "utf8").trim()), server, "the same nats-server")
      const view = yield* eventually(
        call(second.base, "GET", "/v1/admin/cluster", { key: ADMIN }),
        (answer) => (answer.body as { processes?: Array<{ shards: Array<number> }> } | undefined)?.processes?.filter((p) => p.shards.length > 0).length === 2,
        "60 seconds"
      )
      assert.strictEqual((view.body as { processes: Array<unknown> }).processes.length, 2)
      const created = yield* call(first.base, "PUT", "/v1/entities/advertiser/5", { key: ADMIN, body: { name: "Both" } })
      assert.strictEqual(created.status, 201, created.text)

      assert.strictEqual(yield* stopProcess(first, "SIGTERM"), 0)
      assert.isTrue(isAlive(server), "the bus stays up while a process still uses it")
      // A process killed outright cannot say it leaves: the server stays up for the others.
      const killed = yield* startPlatformProcess(env, dataDir)
      yield* waitUntilReady(killed)
      yield* stopProcess(killed, "SIGKILL")
      assert.isTrue(isAlive(server))
      // The survivor takes the first one's shards and goes on serving every entity.
      const patched = yield* eventually(
        call(second.base, "PATCH", "/v1/entities/advertiser/5", { key: ADMIN, body: { name: "Second" }, headers: { "idempotency-key": "after-first" } }),
        (answer) => answer.status === 200,
        "60 seconds"
      )
      assert.strictEqual((patched.body as { revision: number }).revision, 1)

      assert.strictEqual(yield* stopProcess(second, "SIGTERM"), 0)
      yield* eventually(Effect.sync(() => isAlive(server)), (alive) => !alive, "20 seconds")
    }).pipe(Effect.scoped), { timeout: 180_000 })

  it.live("the last process out stops the nats-server running now, also one that replaced the server it had joined", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("shared-bus-replaced")
      yield* killServerAtEnd(dataDir)
      const env = { DATA_DIR: dataDir, ADMIN_API_KEY: ADMIN, NATS_PORT: String(yield* freePort()), SHARDS: "8" }
      const first = yield* startPlatformProcess(env, dataDir)
      yield* waitUntilReady(first)
      const original = yield* serverPid(dataDir)
      process.kill(original, "SIGKILL")
      yield* eventually(Effect.sync(() => isAlive(original)), (alive) => !alive, "20 seconds")
      // A process started now finds no server answering and starts another one.
      const second = yield* startPlatformProcess(env, dataDir)
      yield* waitUntilReady(second)
      const replacement = yield* serverPid(dataDir)
      assert.notStrictEqual(replacement, original)
      assert.strictEqual(yield* stopProcess(second, "SIGTERM"), 0)
      assert.isTrue(isAlive(replacement), "the first process still uses it")
      // The first process joined the server that died; leaving last, it stops the one running now.
      assert.strictEqual(yield* stopProcess(first, "SIGTERM"), 0)
      yield* eventually(Effect.sync(() => isAlive(replacement)), (alive) => !alive, "20 seconds")
    }).pipe(Effect.scoped), { timeout: 180_000 })

  it.live("two processes started at the same instant share one nats-server", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("shared-bus-race")
      yield* killServerAtEnd(dataDir)
      const env = { DATA_DIR: dataDir, ADMIN_API_KEY: ADMIN, NATS_PORT: String(yield* freePort()), SHARDS: "8" }
      const both = yield* Effect.all([startPlatformProcess(env, dataDir), startPlatformProcess(env, dataDir)])
      yield* Effect.forEach(both, waitUntilReady, { discard: true, concurrency: "unbounded" })
      const server = yield* serverPid(dataDir)
      assert.isTrue(isAlive(server))
      for (const platform of both) {
        const created = yield* call(platform.base, "PUT", `/v1/entities/advertiser/${platform.pid}`, { key: ADMIN, body: { name: "Race" } })
        assert.strictEqual(created.status, 201, created.text)
      }
      yield* Effect.forEach(both, (platform) => stopProcess(platform, "SIGTERM"), { discard: true, concurrency: "unbounded" })
      yield* eventually(Effect.sync(() => isAlive(server)), (alive) => !alive, "20 seconds")
    }).pipe(Effect.scoped), { timeout: 120_000 })
})
