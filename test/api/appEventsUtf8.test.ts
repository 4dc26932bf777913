/**
 * Device ids are text, kept apart to the last character, from outside on a platform in its own process
 * (attack 11); the rollups are what the events became. Bytes that are not UTF-8 (an SDK writing
 * Latin-1: `dev-é` and `dev-è` as E9 and E8) used to be decoded as U+FFFD, and lone surrogates written
 * as JSON escapes (`"\ud800"`, `"\udc00"`: two strings) became U+FFFD when hashed or stored: either way
 * two devices became one, and the second's event, answered `accepted`, was dropped as a duplicate.
 * Now a body that is not UTF-8 is 400 and an event holding a lone surrogate is rejected by its index,
 * while ids that differ only in a non-ASCII character stay two devices.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer, TestNatsServer } from "../fixtures/nats.ts"
import { call, platformEnv, startPlatformProcess, waitUntilReady } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "attack11-utf8-admin-key-01"

describe("app events' device ids", () => {
  it.live("a body that is not UTF-8 is 400, lone surrogates are rejected by index, and ids differing in one non-ASCII character are two devices", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("events-utf8")
      const nats = yield* TestNatsServer
      const platform = yield* startPlatformProcess(platformEnv(nats, dataDir, ADMIN, { SHARDS: "4" }), dataDir)
      yield* waitUntilReady(platform)
      assert.strictEqual((yield* call(platform.base, "PUT", "/v1/entities/app/9202", { key: ADMIN, body: { name: "Latin", publisher: "p", category: "c" } })).status, 201)
      // the metadata cache sees the new app: an empty batch is 400, no longer 404
      yield* eventually(call(platform.base, "POST", "/v1/apps/9202/events", { key: ADMIN, body: [] }), (a) => a.status !== 404)
      const post = (body: string | Buffer) =>
        Effect.promise(() =>
          fetch(`${platform.base}/v1/apps/9202/events`, { method: "POST", headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" }, body })
            .then(async (r) => ({ status: r.status, text: await r.text() })))

      const time = new Date().toISOString()
      const event = (id: string | Buffer) => Buffer.concat([Buffer.from(`{"deviceId":"dev-`), Buffer.from(id), Buffer.from(`","seq":0,"time":"${time}","type":"open"}`)])
      const latin = yield* post(Buffer.concat([Buffer.from("["), event(Buffer.from([0xe9])), Buffer.from(","), event(Buffer.from([0xe8])), Buffer.from("]")]))
      assert.strictEqual(latin.status, 400, latin.text)
      assert.match(latin.text, /not valid UTF-8/)

      // The same ids in UTF-8, and two lone surrogates (valid JSON escapes, not text).
      const answer = yield* post(`[${[event("é"), event("\\ud800"), event("è"), event("\\udc00")].join(",")}]`)
      assert.strictEqual(answer.status, 202, answer.text)
      const { accepted, rejected } = JSON.parse(answer.text) as { accepted: number; rejected: Array<{ index: number; reason: string }> }
      assert.strictEqual(accepted, 2)
      assert.deepStrictEqual(rejected.map((r) => r.index), [1, 3])
      assert.match(rejected[0]!.reason, /^deviceId: not well-formed Unicode/)

      const from = new Date(Date.now() - 86_400_000).toISOString().slice(0, 13) + ":00:00Z"
      const to = new Date(Date.now() + 86_400_000).toISOString().slice(0, 13) + ":00:00Z"
      const metric = (measure: string) =>
        Effect.map(call(platform.base, "GET", `/v1/apps/9202/metrics?measure=${measure}&from=${from}&to=${to}&granularity=day`, { key: ADMIN }), (a) =>
          ((a.body as { rows?: Array<{ value: number }> }).rows ?? []).reduce((sum, row) => sum + row.value, 0))
      // both accepted events counted, as two devices (a merged pair would stay at one and time out)
      const counted = yield* eventually(Effect.all([metric("events"), metric("devices")]), ([events, devices]) => events >= 2 && devices >= 2)
      assert.deepStrictEqual(counted, [2, 2])
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 120_000 })
})
