import { assert, layer } from "@effect/vitest"
import { Effect, Metric, Option } from "effect"
import { cleanEventsOf, type CleanMessage } from "../../../domain/events/CleanEvent.ts"
import { Metadata } from "../../../domain/events/Metadata.ts"
import * as MetadataCache from "../../../infra/events/metadataCache.ts"
import { createKey, eventually, request } from "../../fixtures/http.ts"
import { lastOnSubject } from "../../fixtures/jetstreamContents.ts"
import { layerTestPlatform } from "../../fixtures/platform.ts"
import { cleanEventsSubject, snapshotSubject, StreamNames } from "../../../domain/subjects.ts"
import { Nats } from "../../../infra/nats/Nats.ts"

const put = (type: string, id: string, body: unknown) =>
  Effect.gen(function*() {
    const res = yield* request({ method: "PUT", url: `/v1/entities/${type}/${id}`, body })
    assert.oneOf(res.statusCode, [200, 201], res.body)
  })

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })("metadata cache (SNAPSHOTS-fed)", (it) => {
  it.effect("an app changed through the API is seen with its new value, without loading it again", () =>
    Effect.gen(function*() {
      const metadata = yield* Metadata
      yield* put("app", "7001", { name: "Runner", publisher: "Acme Games", category: "games" })
      const first = yield* eventually(metadata.app("7001"), Option.isSome, "20 seconds")
      assert.deepStrictEqual(first, Option.some({ name: "Runner", publisher: "Acme Games", category: "games" }))
      const before = yield* metadata.stats
      const patched = yield* request({ method: "PATCH", url: "/v1/entities/app/7001", body: { publisher: "Beta Studio" } })
      assert.strictEqual(patched.statusCode, 200, patched.body)
      // The follower replaces the entry: the lookups below are hits, never a reload (its time to live is 10 minutes).
      yield* eventually(metadata.app("7001"), (app) => Option.isSome(app) && app.value.publisher === "Beta Studio", "10 seconds")
      const after = yield* metadata.stats
      assert.strictEqual(after.misses, before.misses, "the new value came from SNAPSHOTS' follower, not from a load")
      assert.isAbove(after.hits, before.hits)
      // The platform's wiring: an SDK key made through the admin API sends the app's events (found through this cache).
      const sdk = yield* createKey("app:7001")
      const sent = yield* request({ method: "POST", url: "/v1/apps/7001/events", key: sdk.secret, body: [{ deviceId: "d", seq: 0, time: "2026-05-01T12:00:00Z", type: "open" }] })
      assert.strictEqual(sent.statusCode, 202, sent.body)
      assert.deepStrictEqual(sent.json(), { accepted: 1, rejected: [] })
      // ... and the device pipeline enriches it through this cache: the app's current publisher and category.
      const clean = yield* eventually(lastOnSubject(StreamNames.eventsClean, cleanEventsSubject("7001")), (m) => m !== undefined, "30 seconds")
      const dims = cleanEventsOf(clean!.body as CleanMessage).at(-1)!.dims
      assert.deepStrictEqual([dims.publisher, dims.category], ["Beta Studio", "games"])
      const unknown = yield* request({ method: "POST", url: "/v1/apps/7999/events", body: [{ deviceId: "d", seq: 0, time: "2026-05-01T12:00:00Z", type: "open" }] })
      assert.strictEqual(unknown.statusCode, 404, unknown.body)
    }))

  it.effect("a campaign's advertiser; an entity that does not exist is none, and found once created", () =>
    Effect.gen(function*() {
      const metadata = yield* Metadata
      assert.isTrue(Option.isNone(yield* metadata.campaign("8801")))
      yield* put("advertiser", "8800", { name: "Brand" })
      yield* put("campaign", "8801", { advertiserId: "8800", name: "Spring" })
      const campaign = yield* eventually(metadata.campaign("8801"), Option.isSome, "20 seconds")
      assert.deepStrictEqual(campaign, Option.some({ advertiserId: "8800", name: "Spring" }))
    }))

  it.effect("an app whose snapshot is not on SNAPSHOTS yet is read from the event store: created a moment ago, it is found", () =>
    Effect.gen(function*() {
      yield* put("app", "7003", { name: "Racer", publisher: "Acme Games", category: "racing" })
      // The relay's lag, made to last: the snapshot published, then taken off SNAPSHOTS again.
      const { manager } = yield* Nats
      yield* eventually(lastOnSubject(StreamNames.snapshots, snapshotSubject("app", "7003")), (m) => m !== undefined, "20 seconds")
      yield* Effect.promise(() => manager.streams.purge(StreamNames.snapshots, { filter: snapshotSubject("app", "7003") }))
      const cache = yield* MetadataCache.make()
      assert.deepStrictEqual(yield* cache.app("7003"), Option.some({ name: "Racer", publisher: "Acme Games", category: "racing" }))
      assert.isTrue(Option.isNone(yield* cache.app("7004")), "one in neither is none")
      // The intake, through the platform's cache, takes its events at once.
      const sent = yield* request({ method: "POST", url: "/v1/apps/7003/events", body: [{ deviceId: "d", seq: 0, time: "2026-05-01T12:00:00Z", type: "open" }] })
      assert.strictEqual(sent.statusCode, 202, sent.body)
    }))

  it.effect("ids that name nothing do not push out entities that exist: they are kept apart, in a bound of their own", () =>
    Effect.gen(function*() {
      yield* put("app", "7005", { name: "Chess", publisher: "Acme Games", category: "board" })
      yield* eventually(Metadata.use((m) => m.app("7005")), Option.isSome, "20 seconds")
      // Room for 10 entries (and 1 absent one), "does not exist" kept a minute: nothing here lapses on its own.
      const cache = yield* MetadataCache.make({ capacity: 10, absentTimeToLive: "1 minute" })
      // held, and its follower running (which forgets the type's entries when it starts): a change is seen
      const patched = yield* request({ method: "PATCH", url: "/v1/entities/app/7005", body: { category: "strategy" } })
      assert.strictEqual(patched.statusCode, 200, patched.body)
      yield* eventually(cache.app("7005"), (app) => Option.isSome(app) && app.value.category === "strategy", "20 seconds")
      const before = yield* cache.stats
      // An SDK's random campaign ids: each a load, none of them kept over the app.
      for (let i = 0; i < 100; i++) assert.isTrue(Option.isNone(yield* cache.campaign(String(900_000 + i))))
      assert.deepStrictEqual(yield* cache.stats, { hits: before.hits, misses: before.misses + 100 })
      assert.isTrue(Option.isSome(yield* cache.app("7005")))
      assert.deepStrictEqual(yield* cache.stats, { hits: before.hits + 1, misses: before.misses + 100 }, "the app was still cached")
      // the last absent id is kept (a hit), an older one went beyond the bound of one (a load again)
      assert.isTrue(Option.isNone(yield* cache.campaign("900099")))
      assert.isTrue(Option.isNone(yield* cache.campaign("900000")))
      assert.deepStrictEqual(yield* cache.stats, { hits: before.hits + 2, misses: before.misses + 101 })
      // one created after it was looked up as absent is found as soon as its snapshot is seen
      yield* put("advertiser", "8900", { name: "Brand" })
      yield* put("campaign", "900000", { advertiserId: "8900", name: "Late" })
      yield* eventually(cache.campaign("900000"), Option.isSome, "20 seconds")
    }))

  it.effect("100 concurrent misses for one key load it once; hits and misses are counted and on /metrics", () =>
    Effect.gen(function*() {
      yield* put("app", "7002", { name: "Puzzle", publisher: "Acme Games", category: "puzzle" })
      yield* eventually(Metadata.use((m) => m.app("7002")), Option.isSome, "20 seconds")
      const hitsBefore = (yield* Metric.value(MetadataCache.metadataCacheHits)).count
      // A cache of its own, empty: every one of the 100 lookups below is for a key it does not hold.
      const cache = yield* MetadataCache.make()
      const answers = yield* Effect.forEach(Array.from({ length: 100 }, () => "7002"), (id) => cache.app(id), { concurrency: "unbounded" })
      assert.isTrue(answers.every((a) => Option.isSome(a) && a.value.category === "puzzle"))
      assert.deepStrictEqual(yield* cache.stats, { hits: 99, misses: 1 }, "one load, the other 99 waited for it")
      yield* cache.app("7002")
      assert.deepStrictEqual(yield* cache.stats, { hits: 100, misses: 1 })
      assert.isAtLeast((yield* Metric.value(MetadataCache.metadataCacheHits)).count - hitsBefore, 100)
      const metrics = yield* request({ method: "GET", url: "/metrics" })
      assert.match(metrics.body, /tributary_metadata_cache_hits_total\S* \d+/)
      assert.match(metrics.body, /tributary_metadata_cache_misses_total\S* \d+/)
    }))
})
