/**
 * What the attack9 tests share: a platform in its own process on a test nats-server, the partner
 * simulator in another, a partner `acme` with a key, and ingestion of loader records into a segment.
 */
import { assert } from "@effect/vitest"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { TestNatsServer } from "../fixtures/nats.ts"
import { spawnPartnerSimulator, type SimulatedDestinationPatch } from "../fixtures/partnerSimulator.ts"
import { call, type PlatformProcess, platformEnv, startPlatformProcess, stopProcess, waitUntilReady } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

export const ADMIN = "attack9-admin-key-0000001"

export const startAttackPlatform = (
  name: string,
  options: {
    readonly simulated?: Readonly<Record<string, SimulatedDestinationPatch>>
    readonly env?: Record<string, string>
    /** a command the platform runs under (e.g. `prlimit --nofile=…`) */
    readonly launcher?: ReadonlyArray<string>
  } = {}
) =>
  Effect.gen(function*() {
    const dataDir = yield* tempDir(name)
    const nats = yield* TestNatsServer
    const simulator = yield* spawnPartnerSimulator(options.simulated ?? {})
    const env = platformEnv(nats, dataDir, ADMIN, { SHARDS: "4", DELIVERY_TICK: "200 millis", ...options.env })
    const start = Effect.gen(function*() {
      const started = yield* startPlatformProcess(env, dataDir, { launcher: options.launcher ?? [] })
      yield* waitUntilReady(started)
      return started
    })
    let platform: PlatformProcess = yield* start
    /** SIGKILLs the platform and starts it again on the same DATA_DIR. */
    const restart = Effect.gen(function*() {
      yield* stopProcess(platform, "SIGKILL")
      platform = yield* start
    })
    const api = (method: string, path: string, body?: unknown) => call(platform.base, method, path, { key: ADMIN, ...(body === undefined ? {} : { body }) })
    assert.strictEqual((yield* api("PUT", "/v1/entities/partner/acme", { name: "Acme" })).status, 201)
    const partnerKey = ((yield* api("POST", "/v1/admin/keys", { name: "acme", role: "partner:acme" })).body as { secret: string }).secret
    /** Ingests `records` (user, op) into `segment` and waits until it has `members`. */
    const ingest = (segment: string, records: ReadonlyArray<readonly [string, "add" | "remove"]>, members: number) =>
      Effect.gen(function*() {
        const time = new Date().toISOString()
        const lines = records.map(([user, op]) => JSON.stringify({ idKind: "cookie", userId: user, segmentId: segment, op, time })).join("\n") + "\n"
        const posted = yield* Effect.promise(() =>
          fetch(`${platform.base}/v1/ingest/acme/records`, {
            method: "POST",
            headers: { authorization: `Bearer ${partnerKey}`, "content-type": "application/x-ndjson" },
            body: lines
          }).then((r) => r.status))
        assert.strictEqual(posted, 202)
        yield* eventually(api("GET", `/v1/segments/${segment}`), (a) => (a.body as { members?: number }).members === members, "60 seconds")
      })
    return { platform: () => platform, restart, simulator: simulator.url, api, ingest, partnerKey, dataDir }
  })

export const users = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}${i}`)
