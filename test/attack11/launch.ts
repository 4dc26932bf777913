/**
 * attack11: a long-running platform for manual probes. Starts a test nats-server and one platform
 * process (FTP/SFTP on), prints its base URL and ports to stdout, SIGKILL-restarts the platform on
 * SIGUSR2, and stops everything on SIGTERM/SIGINT.
 */
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Deferred, Effect, Scope } from "effect"
import { freePort } from "../../infra/nats/NatsServer.ts"
import { sftpHostKey } from "../../infra/ingest/fileDoors.ts"
import { startTestNatsServer } from "../fixtures/nats.ts"
import { platformEnv, startPlatformProcess, stopProcess, waitUntilReady, type PlatformProcess } from "../fixtures/platformProcess.ts"

const ADMIN = "attack11-admin-key-0000001"
const extra = JSON.parse(process.env.ATTACK_ENV ?? "{}") as Record<string, string>

await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
  const dataDir = mkdtempSync(join(tmpdir(), "attack11-"))
  const nats = yield* startTestNatsServer
  const ports = yield* Effect.all({ ftp: freePort(), sftp: freePort(), passive: freePort() })
  const hostKeyFile = join(dataDir, "sftp-host.key")
  sftpHostKey(hostKeyFile)
  const env = platformEnv(nats, dataDir, ADMIN, {
    SHARDS: "4",
    FTP_ENABLED: "true", FTP_PORT: String(ports.ftp), FTP_PASSIVE_PORTS: `${ports.passive}-${ports.passive + 4}`,
    SFTP_ENABLED: "true", SFTP_PORT: String(ports.sftp), SFTP_HOST_KEY_FILE: hostKeyFile,
    ...extra
  })
  const start = Effect.gen(function*() {
    const p = yield* startPlatformProcess(env, dataDir)
    yield* waitUntilReady(p)
    return p
  })
  let platform: PlatformProcess = yield* start
  const info = () => ({ base: platform.base, pid: platform.pid, dataDir, admin: ADMIN, ftp: ports.ftp, sftp: ports.sftp, hostKeyFile, log: platform.log, natsPid: nats.pid })
  const out = process.env.ATTACK_INFO ?? "/tmp/attack11-info.json"
  writeFileSync(out, JSON.stringify(info()))
  console.log(JSON.stringify(info()))
  const done = yield* Deferred.make<void>()
  const restarting = { busy: false }
  process.on("SIGUSR2", () => {
    if (restarting.busy) return
    restarting.busy = true
    Effect.runFork(Effect.gen(function*() {
      yield* stopProcess(platform, "SIGKILL")
      const scope = yield* Scope.make()
      platform = yield* Scope.provide(scope)(start).pipe(Effect.orDie)
      writeFileSync(out, JSON.stringify(info()))
      console.log("restarted", JSON.stringify(info()))
      restarting.busy = false
    }) as Effect.Effect<void>)
  })
  process.on("SIGTERM", () => Effect.runFork(Deferred.succeed(done, undefined)))
  process.on("SIGINT", () => Effect.runFork(Deferred.succeed(done, undefined)))
  yield* Deferred.await(done)
  yield* stopProcess(platform, "SIGKILL")
})))
process.exit(0)
