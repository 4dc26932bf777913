/**
 * A deleted destination's dead letters go with it (found by attack 11: they stayed on `dlq.<id>`, and a
 * destination created later under the same id — another partner, other segments — listed them as its
 * own and could replay them to its URL: one partner's audience delivered to another). The delete drops
 * them (its history says how many), so the next destination of that id has none to list or replay.
 * On a platform in its own process; a real HTTP server refuses every request (400: dead letters at once).
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer, TestNatsServer } from "../fixtures/nats.ts"
import { call, platformEnv, startPlatformProcess, waitUntilReady } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "attack11-dlq-admin-key-0001"

const refusing = Effect.acquireRelease(
  Effect.callback<{ readonly url: string; readonly close: () => void }>((resume) => {
    const server = createServer((request, response) => {
      request.resume()
      request.on("end", () => {
        response.statusCode = 400
        response.end("{\"error\":\"no\"}")
      })
    })
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/members`, close: () => server.close() })))
  }),
  (s) => Effect.sync(() => s.close())
)

interface DeadLetters {
  readonly items: ReadonlyArray<{ readonly id: string; readonly records: ReadonlyArray<{ readonly userId: string; readonly segmentId: string }> }>
}

describe("a deleted destination's dead letters", () => {
  it.live("are dropped with it: the next destination created under its id (another partner) has none to list or replay", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("dlq-reuse")
      const nats = yield* TestNatsServer
      const platform = yield* startPlatformProcess(platformEnv(nats, dataDir, ADMIN, { SHARDS: "4", DELIVERY_TICK: "200 millis" }), dataDir)
      yield* waitUntilReady(platform)
      const server = yield* refusing
      const api = (method: string, path: string, body?: unknown) => call(platform.base, method, path, { key: ADMIN, ...(body === undefined ? {} : { body }) })

      for (const partner of ["acme", "other"]) assert.strictEqual((yield* api("PUT", `/v1/entities/partner/${partner}`, { name: partner })).status, 201)
      const partnerKey = ((yield* api("POST", "/v1/admin/keys", { name: "acme", role: "partner:acme" })).body as { secret: string }).secret
      const posted = yield* Effect.promise(() =>
        fetch(`${platform.base}/v1/ingest/acme/records`, {
          method: "POST",
          headers: { authorization: `Bearer ${partnerKey}`, "content-type": "application/x-ndjson" },
          body: `{"idKind":"cookie","userId":"acme-customer-1","segmentId":"301","op":"add","time":"${new Date().toISOString()}"}\n`
        }).then((r) => r.status))
      assert.strictEqual(posted, 202)
      yield* eventually(api("GET", "/v1/segments/301"), (a) => (a.body as { members?: number }).members === 1, "30 seconds")

      const first = yield* api("PUT", "/v1/entities/destination/reused", { partnerId: "acme", url: server.url, format: "single", ratePerSecond: 20, segmentIds: ["301"], maxAttempts: 1 })
      assert.strictEqual(first.status, 201, first.text)
      yield* eventually(api("GET", "/v1/destinations/reused/dead-letters"), (a) => ((a.body as DeadLetters).items ?? []).length >= 1, "30 seconds")
      assert.strictEqual((yield* api("DELETE", "/v1/entities/destination/reused")).status, 200)

      // another partner's destination, other segments, under the same id
      const again = yield* api("PUT", "/v1/entities/destination/reused", { partnerId: "other", url: "http://127.0.0.1:9/other", format: "single", ratePerSecond: 20, segmentIds: ["999"] })
      assert.strictEqual(again.status, 201, again.text)
      const inherited = (yield* api("GET", "/v1/destinations/reused/dead-letters")).body as DeadLetters
      assert.deepStrictEqual(inherited.items.flatMap((item) => item.records.map((r) => `${r.userId}@${r.segmentId}`)), [], "partner other's destination holds partner acme's dead letters (and can replay them to its URL)")
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 150_000 })
})
