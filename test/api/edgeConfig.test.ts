import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect } from "effect"
import { PlatformConfig } from "../../api/config.ts"

const parse = (env: Record<string, string>) => PlatformConfig.parse(ConfigProvider.fromEnvRecord(env))

describe("the HTTP edge's settings", () => {
  it.effect("have sane defaults, are read from the environment, and refuse what makes no sense", () =>
    Effect.gen(function*() {
      const defaults = yield* parse({})
      assert.deepStrictEqual(
        [defaults.maxConcurrentReads, defaults.readQueue, Duration.toMillis(defaults.readQueueTimeout), Duration.toMillis(defaults.httpHeadersTimeout), Duration.toMillis(defaults.httpRequestTimeout), defaults.httpMaxConnections, defaults.maxJsonDepth, defaults.authFailures],
        [16, 64, 2_000, 10_000, 30_000, 8_192, 64, { perSecond: 5, burst: 50 }]
      )
      const set = yield* parse({
        MAX_CONCURRENT_READS: "4", READ_QUEUE: "0", READ_QUEUE_TIMEOUT: "500 millis", HTTP_HEADERS_TIMEOUT: "3 seconds",
        HTTP_REQUEST_TIMEOUT: "1 minute", HTTP_MAX_CONNECTIONS: "100", MAX_JSON_DEPTH: "16", AUTH_FAILURES_PER_SECOND: "0.5", AUTH_FAILURES_BURST: "3"
      })
      assert.deepStrictEqual(
        [set.maxConcurrentReads, set.readQueue, Duration.toMillis(set.readQueueTimeout), Duration.toMillis(set.httpHeadersTimeout), Duration.toMillis(set.httpRequestTimeout), set.httpMaxConnections, set.maxJsonDepth, set.authFailures],
        [4, 0, 500, 3_000, 60_000, 100, 16, { perSecond: 0.5, burst: 3 }]
      )
      const bads: Array<Record<string, string>> = [
        { MAX_CONCURRENT_READS: "0" }, { MAX_JSON_DEPTH: "0" }, { READ_QUEUE: "-1" }, { HTTP_REQUEST_TIMEOUT: "soon" }, { AUTH_FAILURES_PER_SECOND: "0" }, { HTTP_MAX_CONNECTIONS: "0" }
      ]
      for (const bad of bads) {
        yield* Effect.flip(parse(bad))
      }
    }))
})
