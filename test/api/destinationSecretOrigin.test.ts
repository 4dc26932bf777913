/**
 * A destination's secret headers are write-only: never in an answer, in history or in a log, so a key
 * that may configure destinations cannot read a partner's credentials. Nor by moving the URL (found by
 * attack 11: a PATCH of only `url` took them to the new host, so any `service` key could read them with
 * a server of its own): a PUT or PATCH moving the URL to another origin (scheme, host or port) without
 * giving `secretHeaders` anew is refused with 422 naming `secretHeaders`; a new path keeps them; given
 * anew (`{}` drops them) only those go to the new origin.
 * On a platform in its own process, with two real HTTP servers standing for the partner and the thief.
 */
import { createServer, type IncomingHttpHeaders } from "node:http"
import type { AddressInfo } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { Context, Effect, Layer, Option, Redacted } from "effect"
import { DestinationSecrets } from "../../domain/delivery/DestinationSecrets.ts"
import { deliverySecretsKey } from "../../infra/delivery/secretsKey.ts"
import { layerSqlite as secretsLayer } from "../../infra/delivery/secretsSqlite.ts"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer, TestNatsServer } from "../fixtures/nats.ts"
import { call, platformEnv, startPlatformProcess, waitUntilReady } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "attack11-secret-admin-key-01"
const SECRET = "sk_live_partner_only_7c1e9a"

/** An HTTP server answering 200 to everything, keeping each request's headers. */
const recorder = Effect.acquireRelease(
  Effect.callback<{ readonly url: string; readonly seen: Array<IncomingHttpHeaders>; readonly close: () => void }>((resume) => {
    const seen: Array<IncomingHttpHeaders> = []
    const server = createServer((request, response) => {
      seen.push(request.headers)
      request.resume()
      request.on("end", () => response.end("ok"))
    })
    server.listen(0, "127.0.0.1", () =>
      resume(Effect.succeed({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/members`, seen, close: () => server.close() })))
  }),
  (r) => Effect.sync(() => r.close())
)

describe("destination secrets and the url", () => {
  it.live("never follow the url to another origin unless given anew; a new path keeps them", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("secret-retarget")
      const nats = yield* TestNatsServer
      const platform = yield* startPlatformProcess(platformEnv(nats, dataDir, ADMIN, { SHARDS: "4", DELIVERY_TICK: "200 millis" }), dataDir)
      yield* waitUntilReady(platform)
      const partner = yield* recorder
      const thief = yield* recorder
      const api = (method: string, path: string, body?: unknown, key = ADMIN) => call(platform.base, method, path, { key, ...(body === undefined ? {} : { body }) })

      assert.strictEqual((yield* api("PUT", "/v1/entities/partner/acme", { name: "Acme" })).status, 201)
      const partnerKey = ((yield* api("POST", "/v1/admin/keys", { name: "acme", role: "partner:acme" })).body as { secret: string }).secret
      const serviceKey = ((yield* api("POST", "/v1/admin/keys", { name: "ops", role: "service" })).body as { secret: string }).secret
      const records = yield* Effect.promise(() =>
        fetch(`${platform.base}/v1/ingest/acme/records`, {
          method: "POST",
          headers: { authorization: `Bearer ${partnerKey}`, "content-type": "application/x-ndjson" },
          body: `{"idKind":"cookie","userId":"u1","segmentId":"301","op":"add","time":"${new Date().toISOString()}"}\n`
        }).then((r) => r.status))
      assert.strictEqual(records, 202)
      yield* eventually(api("GET", "/v1/segments/301"), (a) => (a.body as { members?: number }).members === 1, "30 seconds")

      // the operator creates the destination with the partner's credentials: the partner gets them
      const created = yield* api("PUT", "/v1/entities/destination/acme-dsp", {
        partnerId: "acme", url: partner.url, format: "single", ratePerSecond: 20, segmentIds: ["301"], secretHeaders: { "X-Api-Key": SECRET }
      })
      assert.strictEqual(created.status, 201, created.text)
      yield* eventually(Effect.sync(() => partner.seen.length), (n) => n >= 1, "30 seconds")
      assert.strictEqual(partner.seen[0]!["x-api-key"], SECRET)

      // a service key, which can never read the secret, cannot move the URL to its own server with it
      const moved = yield* api("PATCH", "/v1/entities/destination/acme-dsp", { url: thief.url }, serviceKey)
      assert.strictEqual(moved.status, 422, moved.text)
      assert.deepStrictEqual((moved.body as { errors?: ReadonlyArray<{ pointer: string }> }).errors?.map((e) => e.pointer), ["/secretHeaders"])
      const put = yield* api("PUT", "/v1/entities/destination/acme-dsp", { partnerId: "acme", url: thief.url, format: "single", ratePerSecond: 20, segmentIds: ["301"] }, serviceKey)
      assert.strictEqual(put.status, 422, put.text)

      /** Refreshes until the server saw a request after `from` (a lane re-reads its destination every 5 s). */
      const reached = (server: typeof partner, from: number) =>
        eventually(
          Effect.andThen(call(platform.base, "POST", "/v1/destinations/acme-dsp/refresh", { key: serviceKey }), Effect.sync(() => server.seen.slice(from))),
          (seen) => seen.length >= 1,
          "30 seconds"
        )

      // another path of the same origin keeps them
      const before = partner.seen.length
      const path = yield* api("PATCH", "/v1/entities/destination/acme-dsp", { url: `${partner.url}/v2` }, serviceKey)
      assert.strictEqual(path.status, 200, path.text)
      yield* reached(partner, before)
      assert.deepStrictEqual([...new Set(partner.seen.slice(before).map((headers) => headers["x-api-key"]))], [SECRET])

      // given anew (here: none), the URL moves, and nothing of the old secrets goes with it
      const dropped = yield* api("PATCH", "/v1/entities/destination/acme-dsp", { url: thief.url, secretHeaders: {} }, serviceKey)
      assert.strictEqual(dropped.status, 200, dropped.text)
      assert.deepStrictEqual((dropped.body as { state: { secretHeaders?: unknown } }).state.secretHeaders, [])
      yield* reached(thief, 0)
      assert.deepStrictEqual(thief.seen.map((headers) => headers["x-api-key"]).filter((v) => v !== undefined), [], "the partner's secret reached the new host")

      // The end state of stop 28's outside attack, made on purpose: a PATCH refused for a stale If-Match
      // puts back the secrets it took before another PATCH moved the URL and dropped them (its undo, as
      // api/routes/destinationSecrets.ts runs it: given for the origin they were given for). The race won
      // 16 times in 60, and the deliverer then sent the partner's secret to the thief.
      const secrets = yield* Layer.build(secretsLayer({ path: join(dataDir, "delivery-secrets.db"), key: yield* deliverySecretsKey(Option.none(), dataDir) }))
      yield* Context.get(secrets, DestinationSecrets).put("acme-dsp", { "x-api-key": Redacted.make(SECRET) }, new URL(partner.url).origin)
      // The attacker then patches the secrets without moving the URL (stop 28's re-attack: that relabelled the
      // partner's secret for the thief's origin, and its answer named it). Nothing of them is listed, or sent.
      const relabel = yield* api("PATCH", "/v1/entities/destination/acme-dsp", { secretHeaders: {} }, serviceKey)
      assert.strictEqual(relabel.status, 200, relabel.text)
      assert.deepStrictEqual((relabel.body as { state: { secretHeaders?: unknown } }).state.secretHeaders, [])
      // the lanes read the destination (and its secrets) again once it changes: a plain header marks what they sent since
      const marked = yield* api("PATCH", "/v1/entities/destination/acme-dsp", { headers: { "x-config": "after-undo" } }, serviceKey)
      assert.strictEqual(marked.status, 200, marked.text)
      const since = yield* eventually(
        Effect.andThen(call(platform.base, "POST", "/v1/destinations/acme-dsp/refresh", { key: serviceKey }), Effect.sync(() => thief.seen.filter((h) => h["x-config"] === "after-undo"))),
        (seen) => seen.length >= 1,
        "30 seconds"
      )
      assert.deepStrictEqual(since.map((headers) => headers["x-api-key"]), since.map(() => undefined), "secrets given for the partner's origin reached the new host")
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 150_000 })
})
