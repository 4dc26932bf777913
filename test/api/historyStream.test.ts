import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { HttpServer } from "../../api/platform.ts"
import { assertProblem, createKey, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"
import { ndjsonReader, sseReader } from "../fixtures/streamReader.ts"

interface Envelope {
  readonly type: string
  readonly entityType: string
  readonly entityId: string
  readonly revision: number
  readonly position: number
}

/** Opens the stream on the listening server (a real socket: inject cannot stream). */
const open = (key: string, query = "", headers: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const { url } = yield* HttpServer
    return yield* Effect.promise(() => fetch(`${url}/v1/history/stream${query}`, { headers: { authorization: `Bearer ${key}`, ...headers } }))
  })

const put = (id: string, name: string) =>
  Effect.gen(function*() {
    const res = yield* request({ method: "PUT", url: `/v1/entities/advertiser/${id}`, body: { name } })
    assert.isTrue(res.statusCode < 300, res.body)
  })

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })("history stream", (it) => {
  const seed = Effect.gen(function*() {
    for (const [id, name] of [["700", "a"], ["701", "b"], ["700", "c"], ["702", "d"]] as const) yield* put(id, name)
    return yield* createKey("auditor")
  }).pipe(Effect.cached, Effect.runSync)

  describe("NDJSON", () => {
    it.effect("catches up in global commit order, the same events as the paged history, then follows new commits live", () =>
      Effect.gen(function*() {
        const auditor = yield* seed
        const paged = (yield* request({ method: "GET", url: "/v1/history?limit=1000", key: auditor.secret })).json() as { events: Array<Envelope> }
        const res = yield* open(auditor.secret)
        assert.strictEqual(res.status, 200)
        assert.strictEqual(res.headers.get("content-type"), "application/x-ndjson")
        const events = ndjsonReader(res)
        const caughtUp = (yield* events.take(paged.events.length)) as Array<Envelope>
        assert.deepStrictEqual(caughtUp, paged.events)
        assert.isAtLeast(caughtUp.length, 4)

        yield* put("703", "live")
        const [live] = (yield* events.take(1)) as Array<Envelope>
        assert.deepStrictEqual([live!.entityId, live!.type, live!.revision], ["703", "EntityCreated", 0])
        assert.isAbove(live!.position, caughtUp.at(-1)!.position)
        yield* events.cancel
      }))

    it.effect("starts at fromPosition (inclusive)", () =>
      Effect.gen(function*() {
        const auditor = yield* seed
        const paged = (yield* request({ method: "GET", url: "/v1/history?limit=3", key: auditor.secret })).json() as { events: Array<Envelope> }
        const third = paged.events[2]!
        const events = ndjsonReader(yield* open(auditor.secret, `?fromPosition=${third.position}`))
        const [first] = (yield* events.take(1)) as Array<Envelope>
        assert.deepStrictEqual(first, third)
        yield* events.cancel
      }))
  })

  describe("Server-Sent Events", () => {
    it.effect("each event's id is its position, and Last-Event-ID resumes right after it", () =>
      Effect.gen(function*() {
        const auditor = yield* seed
        const res = yield* open(auditor.secret, "", { accept: "text/event-stream" })
        assert.strictEqual(res.headers.get("content-type"), "text/event-stream")
        const stream = sseReader(res)
        const events = yield* stream.take(3)
        for (const event of events) {
          const envelope = JSON.parse(event.data) as Envelope
          assert.strictEqual(event.id, String(envelope.position))
          assert.strictEqual(event.event, envelope.type)
        }
        yield* stream.cancel

        // The browser's EventSource reconnects with the last id it saw.
        const resumed = sseReader(yield* open(auditor.secret, "?fromPosition=0", { accept: "text/event-stream", "last-event-id": events[1]!.id! }))
        const [next] = yield* resumed.take(1)
        assert.strictEqual(next!.id, events[2]!.id)
        yield* resumed.cancel
      }))
  })

  describe("access", () => {
    it.effect("is for auditors: a service key is 403, no key 401, a bad Last-Event-ID 400", () =>
      Effect.gen(function*() {
        const service = yield* createKey("service")
        assertProblem(yield* request({ method: "GET", url: "/v1/history/stream", key: service.secret }), 403, "forbidden")
        assertProblem(yield* request({ method: "GET", url: "/v1/history/stream", key: null }), 401, "unauthorized")
        const auditor = yield* seed
        const bad = yield* request({ method: "GET", url: "/v1/history/stream", key: auditor.secret, headers: { "last-event-id": "x" } })
        assertProblem(bad, 400, "invalid-request")
      }))

    it.effect("a stream whose key is revoked ends with a 401 problem, and delivers nothing written after it ended", () =>
      Effect.gen(function*() {
        // Before stop 28 it went on delivering every new event to a key revoked since it was opened.
        yield* seed
        const auditor = yield* createKey("auditor", "revoked while following")
        const events = sseReader(yield* open(auditor.secret, "", { accept: "text/event-stream" }))
        yield* put("720", "before")
        const revoke = yield* request({ method: "DELETE", url: `/v1/admin/keys/${auditor.id}` })
        assert.strictEqual(revoke.statusCode, 204, revoke.body)
        // read until the answer ends (a key is checked again every few seconds)
        const rest = yield* events.take(100_000)
        const last = rest.at(-1)!
        assert.strictEqual(last.event, "problem")
        assert.deepInclude(JSON.parse(last.data), { status: 401, code: "unauthorized" })
        yield* put("721", "after")
        assert.deepStrictEqual(yield* events.take(1), [])
        assert.isFalse(rest.some((e) => e.data.includes('"721"')))
      }))
  })
})
