/**
 * The embedded nats-server shared on one DATA_DIR (infra/nats/SharedNatsServer.ts) across PID
 * namespaces: a pid means something only inside its own, so a second platform process on the same
 * DATA_DIR in another PID namespace (containers sharing a volume and the network, one started under
 * `unshare --pid`) cannot look the server up by the pid file (`/proc/<pid>`, `kill(pid, 0)`). It judges
 * the server by its port instead (recorded beside the pid file by whoever started it), joins it, and
 * starts no other nats-server on its store and port: one did, over and over, and corrupted the store
 * (`Error unmarshalling consumer metafile …`, `malformed or corrupt message`).
 * Needs root for `unshare` (skipped elsewhere). And a server recorded as started in a namespace that
 * is gone with its processes (a restarted container) is replaced, since nothing answers on its port.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { freePort, readPidFile } from "../../infra/nats/NatsServer.ts"
import { eventually } from "../fixtures/http.ts"
import { canUnshare, isAlive, ownPidNamespace, startPlatformProcess, stopProcess, waitUntilHealthy, waitUntilReady } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "pidns-nats-admin-key-01"
/**
 * At the end, SIGKILLs the nats-servers on this test's store only (found by their command line): the
 * pid file may name a pid of the other namespace, which here is some unrelated process.
 */
const killServersOnStoreAtEnd = (dataDir: string) =>
  Effect.addFinalizer(() =>
    Effect.sync(() => {
      for (const entry of readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue
        try {
          const args = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0")
          if (args.some((arg) => arg.endsWith("nats-server")) && args.includes(join(dataDir, "nats"))) process.kill(Number(entry), "SIGKILL")
        } catch {
          // gone meanwhile
        }
      }
    }))


describe("the embedded nats-server across PID namespaces", () => {
  it.live.skipIf(!canUnshare)("a process in another PID namespace on the same DATA_DIR joins the live server and starts none on its store", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("nats-pidns")
      yield* killServersOnStoreAtEnd(dataDir)
      const natsPort = yield* freePort()
      const env = { DATA_DIR: dataDir, NATS_PORT: String(natsPort), ADMIN_API_KEY: ADMIN, SHARDS: "4" }
      const a = yield* startPlatformProcess(env, dataDir)
      yield* waitUntilReady(a)
      const server = readPidFile(join(dataDir, "nats-server.pid"))
      assert.isTrue(server._tag === "Some" && isAlive(server.value))
      const serverPid = server._tag === "Some" ? server.value : -1

      const b = yield* startPlatformProcess(env, dataDir, { launcher: ownPidNamespace })
      yield* waitUntilHealthy(b)
      const logFile = b.log
      assert.isNull(b.child.exitCode, readFileSync(logFile, "utf8").slice(-2_000))
      assert.include(readFileSync(logFile, "utf8"), "joined the nats-server already running on this DATA_DIR")
      yield* Effect.sleep("4 seconds") // both supervise it meanwhile (a check every second)
      // A's server runs, answers, and is still the one the pid file names; nobody started another on its store
      assert.isTrue(isAlive(serverPid))
      const restarts = [a.log, logFile].flatMap((file) =>
        readFileSync(file, "utf8").split("\n").filter((line) => line.includes("nats-server on this DATA_DIR is gone")).map((line) => `${file}: ${line.slice(0, 120)}`))
      assert.deepStrictEqual(restarts, [])
      assert.deepStrictEqual(readPidFile(join(dataDir, "nats-server.pid")), server)
      const serverLog = readFileSync(join(dataDir, "nats-server.log"), "utf8")
      assert.notMatch(serverLog, /address already in use|Error unmarshalling|corrupt/)
    }).pipe(Effect.scoped), { timeout: 120_000 })

  it.live("a server recorded as started in a PID namespace that is gone (a restarted container) is replaced once nothing answers on its port", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("nats-pidns-gone")
      yield* killServersOnStoreAtEnd(dataDir)
      const natsPort = yield* freePort()
      writeFileSync(join(dataDir, "nats-server.pid"), "99999999", { mode: 0o600 }) // above any pid_max: names no process here
      writeFileSync(join(dataDir, "nats-server.owner"), JSON.stringify({ pidNamespace: "000000000000", host: "127.0.0.1", port: natsPort }), { mode: 0o600 })
      const a = yield* startPlatformProcess({ DATA_DIR: dataDir, NATS_PORT: String(natsPort), ADMIN_API_KEY: ADMIN, SHARDS: "4" }, dataDir)
      yield* waitUntilReady(a)
      assert.include(readFileSync(a.log, "utf8"), "cannot look up by its pid (another PID namespace), does not answer; starting one")
      const server = readPidFile(join(dataDir, "nats-server.pid"))
      assert.isTrue(server._tag === "Some" && server.value !== 99999999 && isAlive(server.value))
      assert.strictEqual(yield* stopProcess(a, "SIGTERM"), 0)
      // started in this namespace now: the last process out stops it (its exit follows the platform's)
      yield* eventually(Effect.sync(() => server._tag === "Some" && isAlive(server.value)), (alive) => !alive, "20 seconds")
    }).pipe(Effect.scoped), { timeout: 60_000 })
})
