import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { assertInvalid, assertProblem, createKey, eventually, request } from "../fixtures/http.ts"
import { cleanEvent, publishClean } from "../fixtures/appEvents.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"
import { keepMinutes } from "../../projections/events/rollupBuckets.ts"

const app = "4242"
const day = "from=2026-11-28T00:00:00Z&to=2026-11-29T00:00:00Z"
const metrics = (query: string, key?: string) => request({ method: "GET", url: `/v1/apps/${app}/metrics?${query}`, ...(key === undefined ? {} : { key }) })

// about fixed dates: rows kept per minute whatever their age (rollupTiers.test.ts rolls them up)
layer(layerTestPlatform({ ROLLUP_MINUTE_DAYS: String(keepMinutes.minuteDays), ROLLUP_HOUR_DAYS: String(keepMinutes.hourDays) }), { excludeTestServices: true, timeout: 60_000 })("app metrics API", (it) => {
  it.effect("answers rollups grouped by two dimensions and filtered, from events published on EVENTS_CLEAN", () =>
    Effect.gen(function*() {
      yield* publishClean([
        cleanEvent(app, "a", 0, "2026-11-28T10:00:01Z", { dims: { platform: "ios", country: "us", carrier: "AT&T, Inc." } }),
        cleanEvent(app, "b", 0, "2026-11-28T10:30:00Z", { dims: { platform: "ios", country: "us" } }),
        cleanEvent(app, "c", 0, "2026-11-28T11:00:00Z", { dims: { platform: "android", country: "fr" } })
      ])
      const res = yield* eventually(metrics(`measure=events&${day}&groupBy=platform,country`), (res) => res.statusCode === 200 && res.json().rows.length === 2, "30 seconds")
      assert.deepStrictEqual(res.json(), {
        measure: "events",
        granularity: "hour",
        rows: [
          { time: "2026-11-28T10:00:00.000Z", platform: "ios", country: "us", value: 2 },
          { time: "2026-11-28T11:00:00.000Z", platform: "android", country: "fr", value: 1 }
        ]
      })
      // the same groups asked as a repeated parameter (it answered "Expected string")
      assert.deepStrictEqual((yield* metrics(`measure=events&${day}&groupBy=platform&groupBy=country`)).json(), res.json())
      assertInvalid(yield* metrics(`measure=events&${day}&groupBy=platform&groupBy=platform,country`), "query", "/groupBy")
      const filtered = yield* metrics(`measure=devices&${day}&granularity=day&filter=country:us&filter=country:fr&filter=${encodeURIComponent("carrier:AT&T, Inc.")}`)
      assert.strictEqual(filtered.statusCode, 200, filtered.body)
      assert.deepStrictEqual(filtered.json().rows, [{ time: "2026-11-28T00:00:00.000Z", value: 1 }])
    }))

  it.effect("refuses bad queries with problem+json naming the parameter", () =>
    Effect.gen(function*() {
      assertInvalid(yield* metrics(day), "query", "/measure")
      assertInvalid(yield* metrics(`measure=visits&${day}`), "query", "/measure")
      assertInvalid(yield* metrics("measure=events&from=yesterday&to=2026-11-29T00:00:00Z"), "query", "/from")
      assertInvalid(yield* metrics("measure=events&from=2026-11-29T00:00:00Z&to=2026-11-28T00:00:00Z"), "query", "/to")
      assertInvalid(yield* metrics(`measure=events&${day}&granularity=minute&to=2026-11-29T00:01:00Z`.replace(/&to=2026-11-29T00:00:00Z/, "")), "query", "/from")
      assertInvalid(yield* metrics(`measure=events&${day}&granularity=week`), "query", "/granularity")
      assertInvalid(yield* metrics(`measure=events&${day}&groupBy=platform,shoeSize`), "query", "/groupBy")
      assertInvalid(yield* metrics(`measure=events&${day}&filter=platform`), "query", "/filter")
      assertInvalid(yield* metrics(`measure=events&${day}&filter=shoeSize:42`), "query", "/filter")
      assertInvalid(yield* metrics(`measure=custom&${day}`), "query", "/name")
      assertInvalid(yield* metrics(`measure=events&${day}&sum=amount`), "query", "/sum")
      const bad = yield* request({ method: "GET", url: `/v1/apps/not-an-app/metrics?measure=events&${day}` })
      assertInvalid(bad, "path", "/app")
      // another method on the route is 405 naming the ones it takes (it was 404, as for no route)
      const deleted = yield* request({ method: "DELETE", url: `/v1/apps/${app}/metrics?${day}` })
      assertProblem(deleted, 405, "method-not-allowed")
      assert.strictEqual(deleted.headers.allow, "GET, HEAD")
      assertProblem(yield* request({ method: "DELETE", url: `/v1/apps/${app}/metrix` }), 404, "not-found")
      // read as the router reads it: %76 is a v (it was 404)
      assertProblem(yield* request({ method: "DELETE", url: `/%761/apps/${app}/metrics` }), 405, "method-not-allowed")
      // a path no route has, however close (a trailing slash): 404, not 405 naming the GET it was
      assertProblem(yield* request({ method: "GET", url: `/v1/apps/${app}/metrics/?${day}` }), 404, "not-found")
      // a day of minutes is the most one answer covers
      assert.strictEqual((yield* metrics(`measure=events&${day}&granularity=minute`)).statusCode, 200)
    }))

  it.effect("are for service and auditor keys, not the app's own SDK key", () =>
    Effect.gen(function*() {
      const sdk = yield* createKey(`app:${app}`)
      assertProblem(yield* metrics(`measure=events&${day}`, sdk.secret), 403, "forbidden")
      const auditor = yield* createKey("auditor")
      assert.strictEqual((yield* metrics(`measure=events&${day}`, auditor.secret)).statusCode, 200)
      assert.strictEqual((yield* request({ method: "GET", url: "/v1/alerts", key: auditor.secret })).statusCode, 200)
      assertProblem(yield* request({ method: "GET", url: "/v1/alerts", key: sdk.secret }), 403, "forbidden")
    }))
})

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })("app metrics API past the rollups' horizons", (it) => {
  it.effect("refuses a granularity finer than the rows kept, and an end inside an hour kept whole, naming the parameter", () =>
    Effect.gen(function*() {
      // by default minutes are kept 7 days and hours 92: 30 days back is kept per hour
      const hour = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 30 * 86_400_000)
      const at = (minutes: number) => new Date(hour.getTime() + minutes * 60_000).toISOString()
      assertInvalid(yield* metrics(`measure=events&from=${at(0)}&to=${at(60)}&granularity=minute`), "query", "/granularity")
      assertInvalid(yield* metrics(`measure=events&from=${at(30)}&to=${at(120)}`), "query", "/from")
      assertInvalid(yield* metrics(`measure=events&from=${at(0)}&to=${at(90)}`), "query", "/to")
      assert.strictEqual((yield* metrics(`measure=events&from=${at(0)}&to=${at(120)}`)).statusCode, 200)
    }))
})
