/**
 * A deleted destination's chunk left on DELIVER (published as the destination was deleted, after the
 * delete's drop) keeps no deliverer (stop 29's re-attack: 30 destinations created and deleted one after
 * another left 9 deliverers running for good, a loop of them 128 for 5 live lanes, uncounted by
 * DELIVERY_MAX_LANES), and the chunk is swept off DELIVER (the second re-attack: 981 of them filled a
 * 64 MiB DELIVER). Lanes are run for live destinations only; a live one's lanes past a lowered count
 * still drain what they hold (deliveryLanesLowered.test.ts).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { Chunk } from "../../../domain/delivery/Chunk.ts"
import { deliverSubject, StreamNames } from "../../../domain/subjects.ts"
import { Nats, tryNats } from "../../../infra/nats/Nats.ts"
import { eventually } from "../../fixtures/http.ts"
import { layerTestNats, TestNatsServer } from "../../fixtures/nats.ts"
import { call, platformEnv, startPlatformProcess, waitUntilReady } from "../../fixtures/platformProcess.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const ADMIN = "deleted-lanes-admin-key-0001"

const chunk = (destination: string): Chunk => ({
  destination, lane: 0, packageId: "continuous", kind: "continuous", seq: 0, fromPosition: 1, toPosition: 1,
  records: [{ idKind: "cookie", userId: "u1", segmentId: "100", op: "add", time: new Date().toISOString() }]
})

describe("a deleted destination's chunk left on DELIVER", () => {
  it.live("keeps no deliverer running (only live destinations' lanes are run), and is swept off DELIVER", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("deleted-lanes")
      yield* Effect.gen(function*() {
        const nats = yield* TestNatsServer
        const { jetstream, manager } = yield* Nats
        const platform = yield* startPlatformProcess(platformEnv(nats, dataDir, ADMIN, { SHARDS: "4", DELIVERY_TICK: "200 millis" }), dataDir)
        yield* waitUntilReady(platform)
        const api = (method: string, path: string, body?: unknown) => call(platform.base, method, path, { key: ADMIN, ...(body === undefined ? {} : { body }) })
        const running = Effect.map(api("GET", "/metrics"), (answer) => Number(/^tributary_deliverers_running(?:\{[^}]*\})? (\S+)$/m.exec(answer.text)?.[1] ?? 0))
        assert.strictEqual((yield* api("PUT", "/v1/entities/partner/acme", { name: "Acme" })).status, 201)
        const destination = { partnerId: "acme", url: "http://127.0.0.1:9/in", format: "single", ratePerSecond: 10, segmentIds: ["100"] }
        assert.strictEqual((yield* api("PUT", "/v1/entities/destination/live", destination)).status, 201)
        assert.strictEqual((yield* api("PUT", "/v1/entities/destination/gone", destination)).status, 201)
        yield* eventually(running, (n) => n === 2, "60 seconds")
        assert.strictEqual((yield* api("DELETE", "/v1/entities/destination/gone")).status, 200)
        // as packaging's publisher would, racing the delete: a chunk of it after the delete's drop
        yield* tryNats("publish", () => jetstream.publish(deliverSubject("gone", 0), JSON.stringify(chunk("gone"))))
        yield* eventually(running, (n) => n === 1, "60 seconds")
        // and it stays so: several ticks later, the lane was not started again for the chunk it holds
        yield* Effect.sleep("2 seconds")
        assert.strictEqual(yield* running, 1)
        // the chunk itself is swept off DELIVER (packaging saw the destination deleted): its room comes back
        const held = tryNats("stream info", () => manager.streams.info(StreamNames.deliver, { subjects_filter: "deliver.gone.>" })).pipe(
          Effect.map((info) => Object.keys(info.state.subjects ?? {}).length)
        )
        yield* eventually(held, (subjects) => subjects === 0, "30 seconds")
      }).pipe(Effect.provide(layerTestNats()))
    }).pipe(Effect.scoped), { timeout: 120_000 })
})
