/**
 * A destination deleted and created again under the same id, for another partner and another URL,
 * gets nothing of its predecessor (issue 9): on a platform in its own process and the partner
 * simulator in another, the old destination's lane holds chunks whose requests the old URL answers
 * slowly (and refuses: dead letters), when the destination is deleted and created again. The new URL
 * receives the new destination's records only — not what the old lane held, nor a chunk of the old
 * incarnation the package outbox publishes late — and the new destination lists none of the old dead
 * letters. Before incarnations, the old lane went on for up to 5 s (its refusals listed as the new
 * destination's dead letters), and the late chunk went to the new URL.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type Chunk, chunkId } from "../../domain/delivery/Chunk.ts"
import { deliverSubject } from "../../domain/subjects.ts"
import { Nats, tryNats } from "../../infra/nats/Nats.ts"
import { eventually } from "../fixtures/http.ts"
import { layerTestNats, TestNatsServer } from "../fixtures/nats.ts"
import { destinationStats, receivedRequests, spawnPartnerSimulator } from "../fixtures/partnerSimulator.ts"
import { call, platformEnv, startPlatformProcess, waitUntilReady } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "recreated-admin-key-000001"
const ID = "reused"

const oldChunk = (seq: number, users: ReadonlyArray<string>, incarnation: number | undefined): Chunk => ({
  destination: ID,
  lane: 0,
  packageId: "continuous",
  kind: "continuous",
  seq,
  ...(incarnation === undefined ? {} : { incarnation }),
  records: users.map((userId) => ({ idKind: "cookie" as const, userId, segmentId: "501", op: "add" as const, time: new Date().toISOString() }))
})

interface DeadLetters {
  readonly items: ReadonlyArray<{ readonly id: string; readonly records: ReadonlyArray<{ readonly userId: string }> }>
}
interface Status {
  readonly sent: number
  readonly backlog: number
}

describe("a destination created again under a deleted one's id", () => {
  it.live("receives none of its predecessor's records, held or published late, and lists none of its dead letters", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("dest-recreated")
      yield* Effect.gen(function*() {
        const nats = yield* TestNatsServer
        const { jetstream } = yield* Nats
        // the old URL answers each request after 2.5 s with a 400: a dead letter each
        const simulator = yield* spawnPartnerSimulator({ old: { slowMs: 2_500, rejectAll4xx: true } })
        const platform = yield* startPlatformProcess(platformEnv(nats, dataDir, ADMIN, { SHARDS: "4", DELIVERY_TICK: "200 millis" }), dataDir)
        yield* waitUntilReady(platform)
        const api = (method: string, path: string, body?: unknown) => call(platform.base, method, path, { key: ADMIN, ...(body === undefined ? {} : { body }) })
        const publish = (chunk: Chunk, msgId = chunkId(chunk)) =>
          tryNats("publish", () => jetstream.publish(deliverSubject(ID, 0), JSON.stringify(chunk), { msgID: msgId }))

        for (const partner of ["acme", "other"]) assert.strictEqual((yield* api("PUT", `/v1/entities/partner/${partner}`, { name: partner })).status, 201)
        // a member of the new destination's segment, so that its creation sends it a refresh
        const otherKey = ((yield* api("POST", "/v1/admin/keys", { name: "other", role: "partner:other" })).body as { secret: string }).secret
        const posted = yield* Effect.promise(() =>
          fetch(`${platform.base}/v1/ingest/other/records`, {
            method: "POST",
            headers: { authorization: `Bearer ${otherKey}`, "content-type": "application/x-ndjson" },
            body: `{"idKind":"cookie","userId":"new-member","segmentId":"502","op":"add","time":"${new Date().toISOString()}"}\n`
          }).then((r) => r.status))
        assert.strictEqual(posted, 202)
        yield* eventually(api("GET", "/v1/segments/502"), (a) => (a.body as { members?: number }).members === 1, "60 seconds")

        const first = yield* api("PUT", `/v1/entities/destination/${ID}`, {
          partnerId: "acme", url: `${simulator.url}/d/old`, format: "single", ratePerSecond: 50, maxInFlight: 2, maxAttempts: 1, segmentIds: ["501"]
        })
        assert.strictEqual(first.status, 201, first.text)
        // Chunks of the first incarnation (revision 0), as its packaging stamps them: the lane holds them
        yield* publish(oldChunk(0, ["old-1", "old-2", "old-3", "old-4"], 0))
        yield* publish(oldChunk(1, ["old-5", "old-6", "old-7", "old-8"], 0))
        yield* eventually(api("GET", `/v1/destinations/${ID}/status`), (a) => a.status === 200 && (a.body as Status).sent >= 2, "60 seconds")

        assert.strictEqual((yield* api("DELETE", `/v1/entities/destination/${ID}`)).status, 200)
        const again = yield* api("PUT", `/v1/entities/destination/${ID}`, {
          partnerId: "other", url: `${simulator.url}/d/new`, format: "single", ratePerSecond: 50, maxAttempts: 1, segmentIds: ["502"]
        })
        assert.strictEqual(again.status, 201, again.text)
        const userIds = receivedRequests(simulator.url, "new").pipe(
          Effect.map((requests) => requests.flatMap((r) => r.records.map((record) => (record as { userId: string }).userId)))
        )
        const drained = Effect.map(api("GET", `/v1/destinations/${ID}/status`), (a) => a.status === 200 && (a.body as Status).backlog === 0)
        // the new destination's refresh is taken off DELIVER, and the old URL answered the requests that were in flight
        yield* eventually(Effect.all([drained, destinationStats(simulator.url, "old")]), ([empty, old]) => empty && old.failed >= 2, "60 seconds")

        // The package outbox publishing a chunk of the first incarnation late (its publisher was down), then an unstamped one
        yield* publish(oldChunk(2, ["old-late"], 0))
        yield* publish(oldChunk(3, ["unstamped"], undefined))
        yield* eventually(drained, (empty) => empty, "60 seconds")
        const received = yield* userIds
        assert.deepStrictEqual(received.filter((user) => user.startsWith("old-")), [], "the new URL received the old destination's records")
        assert.deepStrictEqual(received, ["new-member", "unstamped"])
        const letters = (yield* api("GET", `/v1/destinations/${ID}/dead-letters`)).body as DeadLetters
        assert.deepStrictEqual(letters.items.flatMap((item) => item.records.map((r) => r.userId)), [], "the new destination lists the old one's dead letters")
      }).pipe(Effect.provide(layerTestNats()))
    }).pipe(Effect.scoped), { timeout: 180_000 })
})
