import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { type EntityBody, assertInvalid, assertProblem, createKey, eventually, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"


interface Envelope {
  readonly type: string
  readonly revision: number
  readonly recordedAt: string
  readonly data: Record<string, unknown>
}

// RFC 7396, written out again here so the expected states do not come from the code under test.
const mergePatch = (target: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> => {
  const out: Record<string, unknown> = { ...target }
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k]
    else if (typeof v === "object" && !Array.isArray(v) && typeof out[k] === "object" && out[k] !== null && !Array.isArray(out[k])) {
      out[k] = mergePatch(out[k] as Record<string, unknown>, v as Record<string, unknown>)
    } else out[k] = v
  }
  return out
}

/** The fields after each event of a history, folded by hand; null where the entity is deleted. */
const foldHistory = (events: ReadonlyArray<Envelope>) => {
  let fields: Record<string, unknown> | null = null
  return events.map((event) => {
    if (event.type === "EntityCreated") fields = event.data.fields as Record<string, unknown>
    else if (event.type === "EntityUpdated") fields = mergePatch(fields ?? {}, event.data.changes as Record<string, unknown>)
    else fields = null
    return fields
  })
}

const SNAPSHOT_EVERY = 5
const plusMillis = (iso: string, ms: number) => new Date(Date.parse(iso) + ms).toISOString()

layer(layerTestPlatform({ SNAPSHOT_EVERY: String(SNAPSHOT_EVERY) }), { excludeTestServices: true, timeout: 60_000 })("asOf", (it) => {
  describe("point-in-time reads across kept snapshots", () => {
    it.effect("asOf at every write, between writes, before creation and after the last write matches folding the history", () =>
      Effect.gen(function*() {
        const auditor = yield* createKey("auditor")
        const url = "/v1/entities/advertiser/500"
        // 28 revisions; the delete lands on a snapshot boundary (revision 9) and the recreate right after it.
        const written: Array<EntityBody> = []
        const write = (method: "PUT" | "PATCH" | "DELETE", body?: unknown) =>
          Effect.gen(function*() {
            const res = yield* request({ method, url, ...(body === undefined ? {} : { body }) })
            assert.isTrue(res.statusCode === 200 || res.statusCode === 201, res.body)
            const entity = res.json() as EntityBody
            assert.strictEqual(entity.revision, written.length)
            written.push(entity)
            yield* Effect.sleep("3 millis") // distinct instants between writes
          })
        yield* write("PUT", { name: "r0", currency: "EUR" })
        for (let r = 1; r <= 8; r++) yield* write("PATCH", r % 3 === 0 ? { currency: null, domain: `d${r}.example` } : { name: `r${r}`, currency: "USD" })
        yield* write("DELETE")
        yield* write("PUT", { name: "r10", status: "active" })
        for (let r = 11; r <= 27; r++) {
          yield* r % 4 === 0 ? write("PUT", { name: `r${r}`, status: "paused" }) : write("PATCH", { name: `r${r}`, domain: r % 2 === 0 ? null : `d${r}.example` })
        }
        assert.strictEqual(written.length, 28)

        const history = yield* request({ method: "GET", url: `${url}/history?limit=1000`, key: auditor.secret })
        assert.strictEqual(history.statusCode, 200, history.body)
        const events = (history.json() as { events: ReadonlyArray<Envelope> }).events
        assert.deepStrictEqual(events.map((e) => e.revision), written.map((w) => w.revision))
        const folded = foldHistory(events)
        assert.deepStrictEqual(folded, written.map((w) => w.state))
        assert.deepStrictEqual(events.map((e) => e.recordedAt), written.map((w) => w.updatedAt))

        // the read model keeps snapshots at revisions 4, 9, 14, 19, 24: wait until it has them all
        yield* eventually(
          request({ method: "GET", url: "/v1/entities/advertiser?limit=1000" }),
          (res) => (res.json() as { items: ReadonlyArray<EntityBody> }).items.some((e) => e.id === "500" && e.revision === 27)
        )

        /** What asOf must answer: the state after the last event recorded at or before `instant`. */
        const expectedAt = (instant: string) => {
          let last = -1
          events.forEach((e, i) => {
            if (e.recordedAt <= instant) last = i
          })
          return last === -1 ? null : { revision: last, state: folded[last] ?? null, updatedAt: events[last]!.recordedAt }
        }
        const assertAsOf = (instant: string) =>
          Effect.gen(function*() {
            const res = yield* request({ method: "GET", url: `${url}?asOf=${encodeURIComponent(instant)}`, key: auditor.secret })
            const expected = expectedAt(instant)
            if (expected === null || expected.state === null) {
              assertProblem(res, 404, "not-found")
              return
            }
            assert.strictEqual(res.statusCode, 200, `asOf ${instant}: ${res.body}`)
            assert.strictEqual(res.headers.etag, `"${expected.revision}"`)
            assert.deepStrictEqual(res.json(), { type: "advertiser", id: "500", ...expected }, `asOf ${instant}`)
          })

        const instants = new Set<string>()
        for (const [i, e] of events.entries()) {
          instants.add(e.recordedAt)
          const next = events[i + 1]
          if (next !== undefined && Date.parse(next.recordedAt) - Date.parse(e.recordedAt) >= 2) instants.add(plusMillis(e.recordedAt, 1))
          if (i > 0 && Date.parse(e.recordedAt) - Date.parse(events[i - 1]!.recordedAt) >= 2) instants.add(plusMillis(e.recordedAt, -1))
        }
        instants.add(plusMillis(events[0]!.recordedAt, -1))
        instants.add(plusMillis(events[events.length - 1]!.recordedAt, 60_000))
        assert.isAtLeast(instants.size, 50)
        yield* Effect.forEach([...instants], assertAsOf, { concurrency: 4, discard: true })

        // right at each snapshot boundary, and as a deleted snapshot (revision 9)
        for (let r = SNAPSHOT_EVERY - 1; r < events.length; r += SNAPSHOT_EVERY) {
          for (const at of [r - 1, r, r + 1]) if (events[at]) yield* assertAsOf(events[at].recordedAt)
        }
        const atDelete = yield* request({ method: "GET", url: `${url}?asOf=${encodeURIComponent(events[9]!.recordedAt)}`, key: auditor.secret })
        // the writes are 3 ms apart, so the recreate is recorded after the delete: at the delete's instant the entity is gone
        assert.isAbove(Date.parse(events[10]!.recordedAt), Date.parse(events[9]!.recordedAt), "the delete and the recreate at distinct instants")
        assertProblem(atDelete, 404, "not-found")

        // the current state (no asOf) is the last write
        const now = yield* request({ method: "GET", url, key: auditor.secret })
        assert.deepStrictEqual(now.json(), written[27])
      }))

    it.effect("asOf before the entity existed is 404; the same instant with an offset is read as UTC", () =>
      Effect.gen(function*() {
        const auditor = yield* createKey("auditor")
        const url = "/v1/entities/advertiser/501"
        const created = yield* request({ method: "PUT", url, body: { name: "late" } })
        assert.strictEqual(created.statusCode, 201)
        const at = (created.json() as EntityBody).updatedAt!
        const before = yield* request({ method: "GET", url: `${url}?asOf=${encodeURIComponent(plusMillis(at, -1))}`, key: auditor.secret })
        const problem = assertProblem(before, 404, "not-found")
        assert.include(problem.detail ?? "", "did not exist")
        assertProblem(yield* request({ method: "GET", url: `${url}?asOf=2000-01-01T00:00:00Z`, key: auditor.secret }), 404, "not-found")
        // the same instant written in +02:00
        const d = new Date(Date.parse(at) + 2 * 3_600_000).toISOString().replace("Z", "+02:00")
        const offset = yield* request({ method: "GET", url: `${url}?asOf=${encodeURIComponent(d)}`, key: auditor.secret })
        assert.strictEqual(offset.statusCode, 200, offset.body)
        assert.deepStrictEqual(offset.json(), created.json())
      }))

    it.effect("asOf that is not a date is 400 naming the query parameter", () =>
      Effect.gen(function*() {
        const auditor = yield* createKey("auditor")
        yield* request({ method: "PUT", url: "/v1/entities/advertiser/502", body: { name: "x" } })
        assertInvalid(yield* request({ method: "GET", url: "/v1/entities/advertiser/502?asOf=yesterday", key: auditor.secret }), "query", "/asOf")
        assertInvalid(yield* request({ method: "GET", url: "/v1/entities/advertiser/502?asOf=", key: auditor.secret }), "query", "/asOf")
      }))
  })
})
