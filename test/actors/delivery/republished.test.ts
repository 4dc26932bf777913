/**
 * A chunk published to DELIVER a second time after it was delivered is not sent again
 * (issue 9): the package outbox re-publishes the rows it had not forgotten at a crash, and past
 * JetStream's 2-minute duplicate window they are stored again as new messages. On a platform in its
 * own process and the partner simulator in another; the re-publish is simulated with another
 * `Nats-Msg-Id`. The lane's watermark (the highest `(toPosition, seq)` it settled, and the ids of the
 * last refresh chunks it settled) makes it skip the copies; chunks sharing a position (one event's
 * records spread over two) are both still sent.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type Chunk, chunkId } from "../../../domain/delivery/Chunk.ts"
import { deliverSubject } from "../../../domain/subjects.ts"
import { Nats, tryNats } from "../../../infra/nats/Nats.ts"
import { eventually } from "../../fixtures/http.ts"
import { layerTestNats, TestNatsServer } from "../../fixtures/nats.ts"
import { destinationStats, receivedRequests, spawnPartnerSimulator } from "../../fixtures/partnerSimulator.ts"
import { call, platformEnv, startPlatformProcess, waitUntilReady } from "../../fixtures/platformProcess.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const ADMIN = "republished-admin-key-00001"
const ID = "acme"

const records = (n: number) =>
  [0, 1, 2].map((i) => ({ idKind: "cookie" as const, userId: `u${n}-${i}`, segmentId: "100", op: "add" as const, time: new Date().toISOString() }))

const chunk = (seq: number, fromPosition: number, toPosition: number): Chunk => ({
  destination: ID, lane: 0, packageId: "continuous", kind: "continuous", seq, fromPosition, toPosition, records: records(seq)
})

describe("a package chunk published again after it was delivered", () => {
  it.live("is not sent again, past the duplicate window, continuous or refresh; continuous chunks sharing a position are each sent once", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("republished")
      yield* Effect.gen(function*() {
        const nats = yield* TestNatsServer
        const { jetstream } = yield* Nats
        const simulator = yield* spawnPartnerSimulator()
        const platform = yield* startPlatformProcess(platformEnv(nats, dataDir, ADMIN, { SHARDS: "4", DELIVERY_TICK: "200 millis" }), dataDir)
        yield* waitUntilReady(platform)
        const api = (method: string, path: string, body?: unknown) => call(platform.base, method, path, { key: ADMIN, ...(body === undefined ? {} : { body }) })
        assert.strictEqual((yield* api("PUT", "/v1/entities/partner/acme-co", { name: "Acme" })).status, 201)
        const put = yield* api("PUT", `/v1/entities/destination/${ID}`, {
          partnerId: "acme-co", url: `${simulator.url}/d/${ID}`, format: "single", ratePerSecond: 100, segmentIds: ["100"]
        })
        assert.strictEqual(put.status, 201, put.text)
        const publish = (c: Chunk, msgId = chunkId(c)) =>
          tryNats("publish", () => jetstream.publish(deliverSubject(ID, 0), JSON.stringify(c), { msgID: msgId }))
        const drained = Effect.map(api("GET", `/v1/destinations/${ID}/status`), (a) => a.status === 200 && (a.body as { backlog: number }).backlog === 0)

        // positions 10..11, then one event at 12 spread over two chunks; and a refresh
        const first = [chunk(0, 10, 11), chunk(1, 12, 12), chunk(2, 12, 12)]
        const refresh: Chunk = { destination: ID, lane: 0, packageId: "refresh-019ac9b4-0000-7000-8000-000000000000", kind: "refresh", seq: 0, records: records(3) }
        for (const c of [...first, refresh]) yield* publish(c)
        yield* eventually(Effect.all([destinationStats(simulator.url, ID), drained]), ([s, empty]) => s.accepted === 12 && empty, "60 seconds")

        // the outbox publishing the first two and the refresh again past the duplicate window (new message ids), then a new chunk
        for (const c of [...first.slice(0, 2), refresh]) yield* publish(c, `${chunkId(c)}-again`)
        yield* publish(chunk(4, 13, 14))
        const stats = yield* eventually(Effect.all([destinationStats(simulator.url, ID), drained]), ([s, empty]) => s.accepted >= 15 && empty, "60 seconds")
        const users = (yield* receivedRequests(simulator.url, ID)).flatMap((r) => r.records.map((record) => (record as { userId: string }).userId))
        assert.strictEqual(stats[0].duplicateKeys, 0, `requests sent again: ${users.join(" ")}`)
        assert.deepStrictEqual(users.toSorted(), [0, 1, 2, 3, 4].flatMap((seq) => [0, 1, 2].map((i) => `u${seq}-${i}`)).toSorted())
      }).pipe(Effect.provide(layerTestNats()))
    }).pipe(Effect.scoped), { timeout: 180_000 })
})
