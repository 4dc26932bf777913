/**
 * A lease whose holder is gone is taken at once only by a process that can see so: one of the holder's
 * host and PID namespace (infra/nats/lease.ts, deadHere). Two platform processes on one machine with
 * the same host name and different PID namespaces — containers on the host's network
 * (`docker run --network host`, Kubernetes `hostNetwork: true`) sharing DATA_DIR, or one started under
 * `unshare --pid` — cannot look at each other's pids (`kill(pid, 0)` finds none), so each waits for
 * the other's leases to expire instead of taking them from a live holder.
 *
 * Here: the platform A in this namespace, then B under `unshare --pid --fork --mount-proc` (root only;
 * skipped elsewhere), both on one test nats-server (NATS_URL: no embedded server) and one DATA_DIR.
 * A is alive the whole time and keeps its leases.
 */
import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { layerTestNatsServer, TestNatsServer } from "../fixtures/nats.ts"
import { canUnshare, isAlive, ownPidNamespace, platformEnv, startPlatformProcess, waitUntilHealthy, waitUntilReady } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "pidns-lease-admin-key-01"

describe("leases across PID namespaces", () => {
  it.live.skipIf(!canUnshare)("a platform process in another PID namespace with the same host name leaves a live process's leases to it", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("lease-pidns")
      const nats = yield* TestNatsServer
      const env = platformEnv(nats, dataDir, ADMIN, { SHARDS: "4", DELIVERY_TICK: "200 millis" })
      const a = yield* startPlatformProcess(env, dataDir)
      yield* waitUntilReady(a)
      yield* Effect.sleep("2 seconds")
      assert.notMatch(readFileSync(a.log, "utf8"), /lease \S+ lost|LeaseLost/)

      // B: the same platform, same DATA_DIR and NATS, in a PID namespace of its own
      const b = yield* startPlatformProcess(env, dataDir, { launcher: ownPidNamespace })
      yield* waitUntilHealthy(b)
      const logFile = b.log
      yield* Effect.sleep("6 seconds") // under the lease TTL (10 s): A, alive and renewing, holds its leases
      assert.isTrue(isAlive(a.pid))
      assert.isNull(b.child.exitCode)
      const aLog = readFileSync(a.log, "utf8")
      const lost = aLog.split("\n").filter((line) => /lease \S+ lost|LeaseLost/.test(line)).map((line) => line.slice(0, 160))
      assert.deepStrictEqual(lost, [], `A (alive) lost leases to B:\n${lost.slice(0, 5).join("\n")}\nB: ${readFileSync(logFile, "utf8").split("\n").filter((l) => l.includes("taken")).slice(0, 3).join("\n")}`)
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 120_000 })
})
