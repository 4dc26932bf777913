import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { type EntityBody, assertInvalid, assertProblem, createKey, eventually, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

interface Page { readonly items: ReadonlyArray<EntityBody>; readonly next?: string }

const ids = ["18446744073709551615", "9", "10", "0", "1", "100", "99", "18446744073709551614", "5", "9007199254740993", "9007199254740992", "42"]
const deleted = new Set(["100", "5", "9007199254740992"])
const live = ids.filter((id) => !deleted.has(id)).sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0))

/** Every page of the advertiser list, following `next`. */
const listAll = (limit: number, key?: string) =>
  Effect.gen(function*() {
    const pages: Array<Page> = []
    let cursor: string | undefined
    do {
      const res = yield* request({
        method: "GET", url: `/v1/entities/advertiser?limit=${limit}${cursor === undefined ? "" : `&cursor=${encodeURIComponent(cursor)}`}`,
        ...(key === undefined ? {} : { key })
      })
      assert.strictEqual(res.statusCode, 200, res.body)
      const page = res.json() as Page
      assert.isAtMost(page.items.length, limit)
      pages.push(page)
      cursor = page.next
    } while (cursor !== undefined && pages.length < 100)
    return pages
  })

const listedIds = (pages: ReadonlyArray<Page>) => pages.flatMap((p) => p.items.map((e) => e.id))

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })("list API", (it) => {
  // Written once, by whichever test runs first.
  const seed = Effect.gen(function*() {
    for (const id of ids) {
      const res = yield* request({ method: "PUT", url: `/v1/entities/advertiser/${id}`, body: { name: `adv ${id}` } })
      assert.strictEqual(res.statusCode, 201, res.body)
    }
    for (const id of deleted) assert.strictEqual((yield* request({ method: "DELETE", url: `/v1/entities/advertiser/${id}` })).statusCode, 200)
    yield* request({ method: "PATCH", url: "/v1/entities/advertiser/9", body: { name: "nine" } })
    // deleted, then created again: listed
    yield* request({ method: "DELETE", url: "/v1/entities/advertiser/42" })
    assert.strictEqual((yield* request({ method: "PUT", url: "/v1/entities/advertiser/42", body: { name: "back" } })).statusCode, 201)
    yield* request({ method: "PUT", url: "/v1/entities/campaign/7", body: { advertiserId: "9", name: "not an advertiser" } })
  }).pipe(Effect.cached, Effect.runSync)

  /** Waits (bounded) until the eventually consistent list shows exactly the live advertisers. */
  const caughtUp = eventually(listAll(1000), (pages) => JSON.stringify(listedIds(pages)) === JSON.stringify(live))

  describe("listing entities", () => {
    it.effect("pages through every live entity exactly once, in numeric id order, deleted ones excluded", () =>
      Effect.gen(function*() {
        yield* seed
        yield* caughtUp
        for (const limit of [1, 2, 3, 4, 9, 100]) {
          const pages = yield* listAll(limit)
          assert.deepStrictEqual(listedIds(pages), live, `limit ${limit}`)
          assert.strictEqual(pages.length, Math.max(1, Math.ceil(live.length / limit)), `limit ${limit}`)
          assert.isUndefined(pages[pages.length - 1]!.next)
        }
        const [first] = (yield* listAll(100))
        const nine = first!.items.find((e) => e.id === "9")!
        assert.deepStrictEqual({ ...nine, updatedAt: null }, { type: "advertiser", id: "9", revision: 1, state: { name: "nine" }, updatedAt: null })
        assert.isString(nine.updatedAt)
      }))

    it.effect("is readable by service and auditor keys; other types are listed apart", () =>
      Effect.gen(function*() {
        yield* seed
        yield* caughtUp
        const service = yield* createKey("service")
        const auditor = yield* createKey("auditor")
        assert.deepStrictEqual(listedIds(yield* listAll(5, service.secret)), live)
        assert.deepStrictEqual(listedIds(yield* listAll(5, auditor.secret)), live)
        const campaigns = yield* eventually(
          request({ method: "GET", url: "/v1/entities/campaign" }),
          (res) => (res.json() as Page).items.length > 0
        )
        assert.deepStrictEqual((campaigns.json() as Page).items.map((e) => `${e.type}/${e.id}`), ["campaign/7"])
        const strategies = yield* request({ method: "GET", url: "/v1/entities/strategy" })
        assert.deepStrictEqual(strategies.json(), { items: [] })
      }))

    it.effect("rejects a limit out of range with 400 naming the parameter", () =>
      Effect.gen(function*() {
        for (const limit of ["0", "1001", "-1", "x", "1.5"]) {
          assertInvalid(yield* request({ method: "GET", url: `/v1/entities/advertiser?limit=${limit}` }), "query", "/limit")
        }
      }))

    it.effect("rejects a cursor it did not hand out with 400 naming the parameter", () =>
      Effect.gen(function*() {
        for (const cursor of ["!!", Buffer.from("abc").toString("base64url"), Buffer.from("007").toString("base64url")]) {
          assertInvalid(yield* request({ method: "GET", url: `/v1/entities/advertiser?cursor=${cursor}` }), "query", "/cursor")
        }
      }))
  })

  describe("pages of large entities", () => {
    it.effect("hold at most about 8 MiB, whatever the limit, and the pages list every entity once", () =>
      Effect.gen(function*() {
        // Before stop 28: 1,000 strategies of 10,000 segment ids were one 230 MB answer (16 at once: 6.3 GB of RSS).
        assert.strictEqual((yield* request({ method: "PUT", url: "/v1/entities/advertiser/8100", body: { name: "big" } })).statusCode, 201)
        assert.strictEqual((yield* request({ method: "PUT", url: "/v1/entities/campaign/8101", body: { advertiserId: "8100", name: "big" } })).statusCode, 201)
        const segmentIds = Array.from({ length: 10_000 }, (_, i) => String(1_000_000_000_000_000_000n + BigInt(i)))
        const strategies = Array.from({ length: 50 }, (_, i) => String(8200 + i))
        for (const id of strategies) {
          const res = yield* request({ method: "PUT", url: `/v1/entities/strategy/${id}`, body: { campaignId: "8101", name: "big", bidPrice: 1, segmentIds } })
          assert.strictEqual(res.statusCode, 201, res.body.slice(0, 200))
        }
        const listed = (cursor?: string) =>
          Effect.gen(function*() {
            const pages: Array<{ readonly items: ReadonlyArray<EntityBody>; readonly next?: string; readonly chars: number }> = []
            for (let next = cursor; pages.length === 0 || next !== undefined;) {
              const res = yield* request({ method: "GET", url: `/v1/entities/strategy?limit=1000${next === undefined ? "" : `&cursor=${encodeURIComponent(next)}`}` })
              assert.strictEqual(res.statusCode, 200)
              const page = res.json() as Page
              pages.push({ ...page, chars: res.body.length })
              next = page.next
            }
            return pages
          })
        const pages = yield* eventually(listed(), (found) => found.flatMap((p) => p.items).length === strategies.length)
        assert.isAbove(pages.length, 1)
        for (const page of pages) assert.isBelow(page.chars, 9 * 1024 * 1024)
        assert.deepStrictEqual(pages.flatMap((p) => p.items.map((e) => e.id)), strategies)
        // the other tests here count the advertisers: these go again
        for (const id of strategies) assert.strictEqual((yield* request({ method: "DELETE", url: `/v1/entities/strategy/${id}` })).statusCode, 200)
        assert.strictEqual((yield* request({ method: "DELETE", url: "/v1/entities/campaign/8101" })).statusCode, 200)
        assert.strictEqual((yield* request({ method: "DELETE", url: "/v1/entities/advertiser/8100" })).statusCode, 200)
      }), { timeout: 120_000 })
  })

  describe("rebuilding the read model", () => {
    it.effect("answers 202, after which the list again shows every live entity", () =>
      Effect.gen(function*() {
        yield* seed
        yield* caughtUp
        const service = yield* createKey("service")
        assertProblem(yield* request({ method: "POST", url: "/v1/admin/projections/entities/rebuild", key: service.secret }), 403, "forbidden")
        const res = yield* request({ method: "POST", url: "/v1/admin/projections/entities/rebuild" })
        assert.strictEqual(res.statusCode, 202, res.body)
        yield* caughtUp
        assert.deepStrictEqual(listedIds(yield* listAll(2)), live)
        // writes after the rebuild still reach the read model
        yield* request({ method: "PUT", url: "/v1/entities/advertiser/77", body: { name: "after rebuild" } })
        yield* eventually(listAll(1000), (pages) => listedIds(pages).includes("77"))
        yield* request({ method: "DELETE", url: "/v1/entities/advertiser/77" })
        yield* caughtUp
      }))
  })
})
