/**
 * A remove never overtakes its add while a destination's `lanes` changes (issue 9): a user's records
 * split for the new count wait in the package outbox until DELIVER holds nothing of the destination split
 * for the old one. A platform in its own process, the partner simulator in its own (it keeps the requests
 * it accepted, in order); `lanes` raised then lowered while records wait, and a SIGKILL of the platform
 * while the new split waits.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { DeliveryRecord } from "../../domain/delivery/Chunk.ts"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer, TestNatsServer } from "../fixtures/nats.ts"
import { receivedRequests, spawnPartnerSimulator } from "../fixtures/partnerSimulator.ts"
import { call, platformEnv, startPlatformProcess, stopProcess, waitUntilReady } from "../fixtures/platformProcess.ts"
import type { PlatformProcess } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "lanes-changed-admin-key-001"
const SEGMENT = "401"
const users = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `u${from + i}`)

interface Arrival {
  readonly at: number
  readonly record: DeliveryRecord
}

/** What the partner accepted, in order, each request once (a repeat after a crash carries the first one's Idempotency-Key). */
const arrivals = (simulator: string, destination: string) =>
  Effect.map(receivedRequests(simulator, destination), (requests) => {
    const seen = new Set<string | null>()
    return requests.filter((r) => r.key === null || (!seen.has(r.key) && seen.add(r.key)))
      .flatMap((r) => r.records.map((record) => ({ at: r.at, record: record as DeliveryRecord })))
  })

/** Per user, the ops in the order the partner accepted them. */
const opsPerUser = (received: ReadonlyArray<Arrival>) => {
  const ops = new Map<string, Array<string>>()
  for (const { record } of received) ops.set(record.userId, [...ops.get(record.userId) ?? [], record.op])
  return ops
}

const setup = (name: string, options: { readonly limit: number; readonly users: number }) =>
  Effect.gen(function*() {
    const dataDir = yield* tempDir(name)
    const nats = yield* TestNatsServer
    const simulator = yield* spawnPartnerSimulator({})
    const env = platformEnv(nats, dataDir, ADMIN, { SHARDS: "4", DELIVERY_TICK: "200 millis", DELIVERY_CHUNK_RECORDS: "10" })
    const start = Effect.gen(function*() {
      const platform = yield* startPlatformProcess(env, dataDir)
      yield* waitUntilReady(platform)
      return platform
    })
    let platform: PlatformProcess = yield* start
    const api = (method: string, path: string, body?: unknown) => call(platform.base, method, path, { key: ADMIN, ...(body === undefined ? {} : { body }) })

    assert.strictEqual((yield* api("PUT", "/v1/entities/partner/acme", { name: "Acme" })).status, 201)
    const partnerKey = ((yield* api("POST", "/v1/admin/keys", { name: "acme", role: "partner:acme" })).body as { secret: string }).secret
    /** Ingests the records (`op` per user, in order) and waits until the segment has `members`: their events are committed. */
    const ingest = (records: ReadonlyArray<readonly [string, "add" | "remove"]>, members: number) =>
      Effect.gen(function*() {
        const time = new Date().toISOString()
        const lines = records.map(([user, op]) => JSON.stringify({ idKind: "cookie", userId: user, segmentId: SEGMENT, op, time })).join("\n") + "\n"
        const posted = yield* Effect.promise(() =>
          fetch(`${platform.base}/v1/ingest/acme/records`, { method: "POST", headers: { authorization: `Bearer ${partnerKey}`, "content-type": "application/x-ndjson" }, body: lines })
            .then((r) => r.status))
        assert.strictEqual(posted, 202)
        yield* eventually(api("GET", `/v1/segments/${SEGMENT}`), (a) => (a.body as { members?: number }).members === members, "60 seconds")
      })
    yield* ingest(users(0, options.users).map((u) => [u, "add"] as const), options.users)
    const created = yield* api("PUT", "/v1/entities/destination/lc", {
      partnerId: "acme", url: `${simulator.url}/d/lc`, format: "single", ratePerSecond: options.limit, lanes: 1, segmentIds: [SEGMENT]
    })
    assert.strictEqual(created.status, 201, created.text)
    yield* eventually(arrivals(simulator.url, "lc"), (a) => a.length >= 3, "60 seconds")
    const patch = (changes: Record<string, number>) => Effect.gen(function*() {
      const patched = yield* api("PATCH", "/v1/entities/destination/lc", changes)
      assert.strictEqual(patched.status, 200, patched.text)
    })
    const lanes = (n: number) => patch({ lanes: n })
    const restart = Effect.gen(function*() {
      yield* stopProcess(platform, "SIGKILL")
      platform = yield* start
    })
    const barriers = Effect.suspend(() => call(platform.base, "GET", "/metrics", { key: ADMIN })).pipe(Effect.map((answer) =>
      Number(/^tributary_delivery_lane_barriers(?:\{[^}]*\})? (\S+)$/m.exec(answer.text)?.[1] ?? NaN)))
    return { simulator: simulator.url, ingest, lanes, patch, restart, barriers }
  })

describe("a destination's lanes changed while records wait", () => {
  it.live("raised then lowered: the partner gets every user's records in order, each remove after the add it follows", () =>
    Effect.gen(function*() {
      const USERS = 60
      const { simulator, ingest, lanes } = yield* setup("lanes-changed", { limit: 15, users: USERS })
      // Raised while most adds (one lane) wait: half the users leave.
      yield* lanes(3)
      const raisedAt = Date.now()
      yield* ingest(users(0, 30).map((u) => [u, "remove"] as const), 30)
      // Lowered while those removes (three lanes) wait: ten come back, the other half leave.
      yield* lanes(2)
      const loweredAt = Date.now()
      yield* ingest([...users(0, 10).map((u) => [u, "add"] as const), ...users(30, USERS).map((u) => [u, "remove"] as const)], 10)

      const total = USERS + 30 + 10 + 30
      const received = yield* eventually(arrivals(simulator, "lc"), (a) => a.length >= total, "90 seconds")
      assert.strictEqual(received.length, total, "every record once")
      const ops = opsPerUser(received)
      for (const user of users(0, USERS)) {
        const expected = users(0, 10).includes(user) ? ["add", "remove", "add"] : ["add", "remove"]
        assert.deepStrictEqual(ops.get(user), expected, `${user}'s records in the order they were made`)
      }

      // The pause: the new split waits for the old one to be delivered, then follows at once.
      const at = (i: number) => received[i]!.at
      const firstRaised = received.findIndex((a) => a.record.op === "remove")
      const firstLowered = USERS + 30
      console.log(JSON.stringify({
        raised: { newSplitWaitedMs: at(firstRaised) - raisedAt, gapAfterOldSplitMs: at(firstRaised) - at(firstRaised - 1) },
        lowered: { newSplitWaitedMs: at(firstLowered) - loweredAt, gapAfterOldSplitMs: at(firstLowered) - at(firstLowered - 1) }
      }))
      assert.strictEqual(firstRaised, USERS, "every add before the first remove")
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 180_000 })

  it.live("a SIGKILL of the platform while the new split waits loses nothing and keeps the order", () =>
    Effect.gen(function*() {
      const USERS = 30
      const { simulator, ingest, lanes, patch, restart, barriers } = yield* setup("lanes-changed-kill", { limit: 3, users: USERS })
      yield* lanes(3)
      yield* ingest(users(0, USERS).map((u) => [u, "remove"] as const), 0)
      yield* eventually(barriers, (n) => n === 1, "30 seconds")
      const before = (yield* arrivals(simulator, "lc")).length
      assert.isBelow(before, USERS, "the adds still wait when the platform is killed")
      yield* restart
      yield* patch({ ratePerSecond: 60 }) // the rest faster: what is checked is the order, not the rate

      const received = yield* eventually(arrivals(simulator, "lc"), (a) => a.length >= 2 * USERS, "90 seconds")
      assert.strictEqual(received.length, 2 * USERS, "every record once")
      const ops = opsPerUser(received)
      for (const user of users(0, USERS)) assert.deepStrictEqual(ops.get(user), ["add", "remove"], `${user}: the remove after the add`)
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 180_000 })
})
