/**
 * App events nested too deep, from outside, on a platform in its own process (attack 11): the SDK key
 * ships inside every copy of the app, so anyone holds one. An 8 KB gzipped body of one event with an
 * unknown field nested 4,000,000 levels deep inflates to 8 MB of brackets; parsed, it held the event
 * loop for ~3 s a request (4 at once kept /health waiting 7.6 s; ~10 pass the leases' 10 s TTL) and the
 * event was accepted. It is refused like every JSON route's body over MAX_JSON_DEPTH, before parsing.
 */
import { randomBytes } from "node:crypto"
import { gzipSync } from "node:zlib"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer, TestNatsServer } from "../fixtures/nats.ts"
import { call, platformEnv, startPlatformProcess, waitUntilReady } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "attack11-admin-key-0123456"
const DEPTH = 4_000_000

// Random padding, so the body inflates ~100 times, under the gzip bomb bound (domain/gzipBomb.ts): 8 MB
// of brackets in 8 KB is now refused before this check, as a bomb (413); this tests the depth bound itself.
const padding = randomBytes(96 * 1024).toString("base64")

const deepBody = () => {
  const event = `{"deviceId":"deep","seq":0,"time":"${new Date().toISOString()}","type":"open","pad":"${padding}","junk":`
  return gzipSync(Buffer.from(`[${event}${"[".repeat(DEPTH)}${"]".repeat(DEPTH)}}]`), { level: 9 })
}

describe("app events nested deeper than MAX_JSON_DEPTH", () => {
  it.live("a ~100 KB gzipped event nested 4,000,000 deep is refused (400) before it is parsed, and the process stays responsive", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("events-depth")
      const nats = yield* TestNatsServer
      const platform = yield* startPlatformProcess(platformEnv(nats, dataDir, ADMIN, { SHARDS: "4" }), dataDir)
      yield* waitUntilReady(platform)
      assert.strictEqual((yield* call(platform.base, "PUT", "/v1/entities/app/9101", { key: ADMIN, body: { name: "Deep", publisher: "p", category: "c" } })).status, 201)
      const created = yield* call(platform.base, "POST", "/v1/admin/keys", { key: ADMIN, body: { name: "sdk", role: "app:9101" } })
      const sdkKey = (created.body as { secret: string }).secret
      // the metadata cache sees the new app: an empty batch is 400, no longer 404
      yield* eventually(call(platform.base, "POST", "/v1/apps/9101/events", { key: sdkKey, body: [] }), (a) => a.status !== 404)

      const body = deepBody()
      assert.isBelow(body.length, 128 * 1024) // what the attacker sends
      const post = () =>
        fetch(`${platform.base}/v1/apps/9101/events`, {
          method: "POST",
          headers: { authorization: `Bearer ${sdkKey}`, "content-type": "application/json", "content-encoding": "gzip" },
          body
        }).then(async (r) => ({ status: r.status, text: await r.text() }))
      // /health polled every 100 ms while 4 such bodies are worked on: its slowest answer
      const result = yield* Effect.promise(async () => {
        const posts = Promise.all([post(), post(), post(), post()])
        let done = false
        void posts.finally(() => (done = true))
        let slowest = 0
        while (!done) {
          const started = performance.now()
          await fetch(`${platform.base}/health`).then((r) => r.text())
          slowest = Math.max(slowest, performance.now() - started)
          await new Promise((resolve) => setTimeout(resolve, 100))
        }
        return { answers: await posts, slowest }
      })
      // the process must stay responsive: a few hundred KB from a public key must not stall it for seconds
      assert.isBelow(result.slowest, 1_000, `/health waited ${Math.round(result.slowest)} ms behind 4 deep bodies`)
      // and the body is refused like every other JSON route's over MAX_JSON_DEPTH (400 naming the depth),
      // or not read at all: four 8 MB bodies of one app at once pass its half of EVENTS_INFLIGHT_MAX_BYTES (503)
      for (const answer of result.answers) {
        if (answer.status === 503) assert.match(answer.text, /EVENTS_INFLIGHT_MAX_BYTES/)
        else {
          assert.strictEqual(answer.status, 400, answer.text)
          assert.match(answer.text, /nested deeper than/)
        }
      }
      assert.isTrue(result.answers.some((answer) => answer.status === 400), "a deep body read is refused for its depth")
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 120_000 })
})
