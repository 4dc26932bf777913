/**
 * DELIVERY_REFRESH_MAX_BACKLOG against requests sent at once (stop 29; found by stop 28's re-attack: 40
 * PATCHes of a 500-member segment sent at once, 22 passed, a backlog of 4,001 against a bound of 100).
 * A change of segments is checked against the revision its command then expects, and refused while the
 * last change is not packaged yet; refreshes of one destination are checked one at a time.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Option, Redacted } from "effect"
import { DestinationSecrets } from "../../domain/delivery/DestinationSecrets.ts"
import { DeliveryPackages } from "../../projections/delivery/packages.ts"
import { eventually, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"
import { added, appendProfileEvents } from "../fixtures/segmentEvents.ts"

const T = "4242" // 10 members
const F = "4343" // 3 members
const EMPTY = "4444"

// Nothing delivers (what DELIVER holds stays); more than 3 records waiting refuses a change that adds.
layer(layerTestPlatform({ DELIVERY_ENABLED: "false", DELIVERY_REFRESH_MAX_BACKLOG: "3" }), { excludeTestServices: true, timeout: 90_000 })("the backlog bound, requests sent at once", (it) => {
  it.effect("20 changes of segments sent at once, or 10 one after another: one passes; 10 refreshes sent at once: as many as the bound lets through one by one", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* request({ method: "PUT", url: "/v1/entities/partner/acme", body: { name: "Acme" } })).statusCode, 201)
      for (let i = 0; i < 10; i++) yield* appendProfileEvents(`maid:t${i}`, added("acme", i < 3 ? [T, F] : [T]))
      const create = (id: string) =>
        request({ method: "PUT", url: `/v1/entities/destination/${id}`, body: { partnerId: "acme", url: "http://127.0.0.1:9/in", format: "single", ratePerSecond: 10, segmentIds: [EMPTY] } })
      const refresh = (id: string) => request({ method: "POST", url: `/v1/destinations/${id}/refresh` })
      const records = (answers: ReadonlyArray<{ readonly statusCode: number; readonly body: string }>) =>
        answers.filter((a) => a.statusCode === 202).map((a) => (JSON.parse(a.body) as { records: number }).records)

      // changes of segments: each would package T's 10 members; the bound lets the first through only
      assert.strictEqual((yield* create("race-segments")).statusCode, 201)
      yield* eventually(refresh("race-segments"), (a) => a.statusCode === 202, "30 seconds") // packaging knows it (0 records)
      const changes = yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => i), (i) =>
        request({ method: "PATCH", url: "/v1/entities/destination/race-segments", body: { segmentIds: [T, String(5000 + i)] } }), { concurrency: "unbounded" })
      const statuses = changes.map((a) => a.statusCode)
      assert.strictEqual(statuses.filter((s) => s === 200).length, 1, changes.map((a) => `${a.statusCode} ${a.body}`).join("\n"))
      assert.strictEqual(statuses.filter((s) => s === 503).length, 19, statuses.join(" "))
      // refused as not packaged yet (Retry-After 1), or, checked again once it was, as over the bound (60)
      assert.isTrue(changes.filter((a) => a.statusCode === 503).every((a) => ["1", "60"].includes(String(a.headers["retry-after"]))))

      // one after another, each sent on the answer to the last: the first passes, and the next ones find
      // it not packaged yet (the backlog does not show its 10 records yet), or packaged and over the bound
      assert.strictEqual((yield* create("race-sequential")).statusCode, 201)
      yield* eventually(refresh("race-sequential"), (a) => a.statusCode === 202, "30 seconds")
      const sequential: Array<number> = []
      for (let i = 0; i < 10; i++) {
        sequential.push((yield* request({ method: "PATCH", url: "/v1/entities/destination/race-sequential", body: { segmentIds: [T, String(6000 + i)] } })).statusCode)
      }
      assert.deepStrictEqual(sequential, [200, ...Array(9).fill(503)])

      // refreshes: each adds F's 3 members; past 3 waiting the next is refused
      assert.strictEqual((yield* create("race-refresh")).statusCode, 201)
      yield* eventually(refresh("race-refresh"), (a) => a.statusCode === 202, "30 seconds")
      const patched = yield* request({ method: "PATCH", url: "/v1/entities/destination/race-refresh", body: { segmentIds: [F] } })
      assert.strictEqual(patched.statusCode, 200, patched.body)
      // once packaged, the change's own refresh (F's 3 members) waits: 3 is not over the bound, so one
      // more refresh is let through, and none after it
      const status = request({ method: "GET", url: "/v1/destinations/race-refresh/status" })
      yield* eventually(status, (a) => a.statusCode === 200 && (JSON.parse(a.body) as { backlog: number }).backlog === 3, "30 seconds")
      const refreshes = yield* Effect.forEach(Array.from({ length: 10 }, () => refresh("race-refresh")), (r) => r, { concurrency: "unbounded" })
      assert.deepStrictEqual(records(refreshes), [3], refreshes.map((a) => `${a.statusCode} ${a.body}`).join("\n"))
    }))

  it.effect("a change there and back sent at once packages one change at most; one that finds another landed first is checked again under its Idempotency-Key; reordering changes nothing", () =>
    Effect.gen(function*() {
      const create = (id: string, segmentIds: ReadonlyArray<string>) =>
        request({ method: "PUT", url: `/v1/entities/destination/${id}`, body: { partnerId: "acme", url: "http://127.0.0.1:9/in", format: "single", ratePerSecond: 10, segmentIds } })
      const patch = (id: string, segmentIds: ReadonlyArray<string>, key?: string) =>
        request({ method: "PATCH", url: `/v1/entities/destination/${id}`, body: { segmentIds }, ...(key === undefined ? {} : { headers: { "idempotency-key": key } }) })
      const backlog = (id: string) => Effect.map(request({ method: "GET", url: `/v1/destinations/${id}/status` }), (a) => (JSON.parse(a.body) as { backlog: number }).backlog)
      const packaged = (id: string) => eventually(request({ method: "POST", url: `/v1/destinations/${id}/refresh` }), (a) => a.statusCode === 202, "30 seconds")

      // there (T's 10 members) and back, sent at once, on five destinations: the way back was checked
      // against the segments it puts back, but lands after the change (stop 29's outside attack: each
      // pair passed, a backlog of 1,250 against 100); pinned to the revision it was checked at, it is checked again
      const ids = ["toggle-0", "toggle-1", "toggle-2", "toggle-3", "toggle-4"]
      for (const id of ids) assert.strictEqual((yield* create(id, [EMPTY])).statusCode, 201)
      for (const id of ids) yield* packaged(id)
      // the way back sent 0–8 ms after the change: the change's checks take a few ms, and the way back
      // (no change when checked) must land after it for the pair to be the attack
      yield* Effect.forEach(ids, (id, i) => Effect.all([patch(id, [T]), Effect.andThen(Effect.sleep(`${2 * i} millis`), patch(id, [EMPTY]))], { concurrency: 2 }), {
        concurrency: "unbounded"
      })
      for (const id of ids) {
        // settled: what packaging made of it is all there (one change: 10 adds; both: 10 adds and 10 removes)
        yield* Effect.sleep("1 second")
        assert.isAtMost(yield* backlog(id), 10, id)
      }

      // two changes at once, each with its key, on five destinations: the one that finds the other landed
      // first is checked and sent again under its key (before, its key counted as reused: 422, and so
      // did the client's retry the 503 asked for, for good)
      const pairs = ["idem-0", "idem-1", "idem-2", "idem-3", "idem-4"]
      for (const id of pairs) assert.strictEqual((yield* create(id, [EMPTY])).statusCode, 201)
      for (const id of pairs) yield* packaged(id)
      const answers = yield* Effect.forEach(pairs, (id) => Effect.all([patch(id, [F], `${id}-a`), patch(id, [F, "4545"], `${id}-b`)], { concurrency: 2 }), { concurrency: "unbounded" })
      for (const pair of answers) {
        assert.isTrue(pair.some((a) => a.statusCode === 200) && pair.every((a) => [200, 503].includes(a.statusCode)), pair.map((a) => `${a.statusCode} ${a.body}`).join("\n"))
      }

      // applied, then another client's change, then the retry under its key: answered what it did, not
      // applied again over the other's change (stop 29's re-attack of a first version, whose pinned command
      // id was the key and the revision: the retry reverted the other's change), its secrets' change recorded once
      assert.strictEqual((yield* create("retried", [EMPTY])).statusCode, 201)
      yield* packaged("retried")
      const mine = { method: "PATCH", url: "/v1/entities/destination/retried", body: { segmentIds: [F], secretHeaders: { "X-Api-Key": "v1" } }, headers: { "idempotency-key": "retry-key" } } as const
      const applied = yield* request(mine)
      assert.strictEqual(applied.statusCode, 200, applied.body)
      const other = yield* eventually(patch("retried", [F, "4646"]), (a) => a.statusCode !== 503, "30 seconds")
      assert.strictEqual(other.statusCode, 200, other.body)
      // (checked first like any request: 503 while the other's change is packaged)
      const retried = yield* eventually(request(mine), (a) => a.statusCode !== 503, "30 seconds")
      assert.strictEqual(retried.statusCode, 200, retried.body)
      // what its first command did (the answer of the first try came after its secrets' record too)
      const answered = JSON.parse(retried.body) as { revision: number; state: { segmentIds: Array<string> } }
      assert.isAtMost(answered.revision, (JSON.parse(applied.body) as { revision: number }).revision)
      assert.deepStrictEqual(answered.state.segmentIds, [F])
      const now = JSON.parse((yield* request({ method: "GET", url: "/v1/entities/destination/retried" })).body) as { state: { segmentIds: Array<string> } }
      assert.deepStrictEqual(now.state.segmentIds, [F, "4646"])
      const history = JSON.parse((yield* request({ method: "GET", url: "/v1/entities/destination/retried/history" })).body) as { events: Array<{ type: string }> }
      assert.strictEqual(history.events.filter((e) => e.type === "SecretsChanged").length, 1, history.events.map((e) => e.type).join(" "))
      // the key with other secret headers is another request: 422, and the secrets stay as they were
      // (stop 29's second re-attack: answered 200 as a retry, the store took them, history said nothing)
      const other2 = yield* eventually(request({ ...mine, body: { segmentIds: [F], secretHeaders: { "X-Api-Key": "v2" } } }), (a) => a.statusCode !== 503, "30 seconds")
      assert.strictEqual(other2.statusCode, 422, other2.body)
      const held = yield* DestinationSecrets.use((secrets) => secrets.held("retried"))
      assert.deepStrictEqual(Object.fromEntries(Object.entries(held.headers).map(([name, value]) => [name, Redacted.value(value)])), { "x-api-key": "v1" })

      // a destination whose last events are its other commands' (a secret rotated) is packaged up to them,
      // so its next change of segments is not held back (nor scans its history back to its last change)
      assert.strictEqual((yield* create("rotated", [EMPTY])).statusCode, 201)
      for (let i = 0; i < 3; i++) {
        const rotated = yield* request({ method: "PATCH", url: "/v1/entities/destination/rotated", body: { secretHeaders: { "X-Api-Key": `key-${i}` } } })
        assert.strictEqual(rotated.statusCode, 200, rotated.body)
      }
      const revision = (JSON.parse((yield* request({ method: "GET", url: "/v1/entities/destination/rotated" })).body) as { revision: number }).revision
      assert.strictEqual(revision, 3, "three SecretsChanged after its creation")
      yield* eventually(DeliveryPackages.use((packages) => packages.packagedRevision("rotated")), (r) => Option.isSome(r) && r.value === revision, "30 seconds")
      assert.strictEqual((yield* patch("rotated", [F])).statusCode, 200)

      // over the bound, the same segments in another order are no change: taken
      assert.strictEqual((yield* create("reorder", [T, F])).statusCode, 201)
      yield* eventually(backlog("reorder"), (n) => n > 3, "30 seconds")
      const reordered = yield* patch("reorder", [F, T])
      assert.strictEqual(reordered.statusCode, 200, reordered.body)
      assert.strictEqual((yield* patch("reorder", [F])).statusCode, 503, "a change over the bound")
    }))

  it.effect("a refresh and a change of segments sent together: the second to act sees the first's package, so one passes", () =>
    Effect.gen(function*() {
      // Before (stop 30's outside attack), the change took no turn and the refresh did not wait for the
      // change's package: both passed, 900 records waiting against a bound of 500.
      const status = (id: string) => request({ method: "GET", url: `/v1/destinations/${id}/status` })
      for (let round = 0; round < 4; round++) {
        const id = `race-both-${round}`
        const created = yield* request({ method: "PUT", url: `/v1/entities/destination/${id}`, body: { partnerId: "acme", url: "http://127.0.0.1:9/in", format: "single", ratePerSecond: 10, segmentIds: [F] } })
        assert.strictEqual(created.statusCode, 201, created.body)
        // F's 3 members wait: not over the bound (3), so either request alone would pass
        yield* eventually(status(id), (a) => a.statusCode === 200 && (JSON.parse(a.body) as { backlog: number }).backlog === 3, "30 seconds")
        const [changed, refreshed] = yield* Effect.all([
          request({ method: "PATCH", url: `/v1/entities/destination/${id}`, body: { segmentIds: [F, T] } }),
          request({ method: "POST", url: `/v1/destinations/${id}/refresh` })
        ], { concurrency: "unbounded" })
        const passed = [changed.statusCode === 200, refreshed.statusCode === 202].filter(Boolean).length
        assert.strictEqual(passed, 1, `round ${round}: change ${changed.statusCode} ${changed.body}; refresh ${refreshed.statusCode} ${refreshed.body}`)
      }
    }))

  it.effect("two creations of one destination at once: one creates, the other is checked again as a change of it, and nothing of the first is dropped", () =>
    Effect.gen(function*() {
      // Before (stop 30's re-attack), both were checked as creations: the second dropped what "a deleted
      // destination under its id" had left, which was the first's package, and the partner never got it.
      const status = (id: string) => request({ method: "GET", url: `/v1/destinations/${id}/status` })
      yield* request({ method: "PUT", url: "/v1/entities/partner/acme", body: { name: "Acme" } })
      for (let round = 0; round < 4; round++) {
        const id = `twice-${round}`
        const body = { partnerId: "acme", url: "http://127.0.0.1:9/in", format: "single", ratePerSecond: 10, segmentIds: [F] }
        const answers = yield* Effect.all([0, 1].map(() => request({ method: "PUT", url: `/v1/entities/destination/${id}`, body })), { concurrency: "unbounded" })
        assert.deepStrictEqual(answers.map((a) => a.statusCode).sort(), [200, 201], answers.map((a) => a.body).join("\n"))
        const history = yield* request({ method: "GET", url: `/v1/entities/destination/${id}/history` })
        const types = (JSON.parse(history.body) as { events: ReadonlyArray<{ type: string }> }).events.map((e) => e.type)
        assert.notInclude(types, "DeliveryDropped", `round ${round}: ${types.join(", ")}`)
        // F's 3 members (the first test's profiles) wait for the partner, once
        yield* eventually(status(id), (a) => a.statusCode === 200 && (JSON.parse(a.body) as { backlog: number }).backlog === 3, "30 seconds")
      }
    }))
})
