/**
 * HOLE (not fixed here, needs its own design): one auditor key may hold any number of
 * `GET /v1/history/stream` answers open. Each costs one rate-limit token once, then polls the event
 * store every 25 ms for as long as the client stays (infra/eventstore/sqlite.ts, subscribeToAll), so
 * 1,000 idle streams from one key kept a platform process at 94% CPU doing nothing (and the file
 * descriptors go with them). Wanted: a bound on the streams a key (and the process) holds open,
 * beyond which the answer is 429/503 problem+json with Retry-After, and live followers sharing one
 * poll of the store rather than one each. Skipped until then: it fails today.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { HttpServer } from "../../api/platform.ts"
import { createKey } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })("history streams one key holds open", (it) => {
  describe.skip("HOLE: unbounded concurrent history streams per key", () => {
    it.effect("a key cannot hold 1,000 streams open: beyond a bound it is answered 429 or 503 with Retry-After", () =>
      Effect.gen(function*() {
        const { url } = yield* HttpServer
        const { secret } = yield* createKey("auditor")
        const abort = new AbortController()
        const answers = yield* Effect.promise(() =>
          Promise.all(Array.from({ length: 1_000 }, () =>
            fetch(`${url}/v1/history/stream`, { headers: { authorization: `Bearer ${secret}` }, signal: abort.signal })
              .then((res) => ({ status: res.status, retryAfter: res.headers.get("retry-after") }))
              .catch(() => ({ status: 0, retryAfter: null })))))
        abort.abort()
        const refused = answers.filter((a) => a.status === 429 || a.status === 503)
        assert.isAbove(refused.length, 0, "some of 1,000 concurrent streams of one key are refused")
        assert.isTrue(refused.every((a) => a.retryAfter !== null), "with Retry-After")
      }))
  })
})
