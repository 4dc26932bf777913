import { assert, describe, layer } from "@effect/vitest"
import { request as httpRequest } from "node:http"
import { Deferred, Effect, Schema, Stream } from "effect"
import { NotFound } from "../../api/problems.ts"
import { route } from "../../api/route.ts"
import { layerTestApp, TestApp } from "../fixtures/app.ts"
import { eventually } from "../fixtures/http.ts"
import { ndjsonReader, sseReader } from "../fixtures/streamReader.ts"

const Tick = Schema.Struct({ n: Schema.Int, pad: Schema.String }).annotate({ identifier: "Tick" })
const pad = "x".repeat(1024)

// What the endless route produced, and whether its stream's finalizer ran.
const ticks = { produced: 0 }
const ticksFinalized = Deferred.makeUnsafe<void>()
const quietFinalized = Deferred.makeUnsafe<void>()

const routes = [
  route({
    method: "GET", url: "/v1/test/ticks", tags: ["test"], roles: ["service"],
    summary: "an endless stream, as fast as the client takes it",
    responses: { 200: { description: "ticks", stream: { item: Tick, eventId: (tick: typeof Tick.Type) => String(tick.n) } } },
    handler: () =>
      Effect.succeed({
        status: 200,
        stream: Stream.iterate(0, (n) => n + 1).pipe(
          Stream.map((n) => {
            ticks.produced = n + 1
            return { n, pad }
          }),
          Stream.ensuring(Deferred.succeed(ticksFinalized, undefined))
        )
      })
  }),
  route({
    method: "GET", url: "/v1/test/items", tags: ["test"], roles: ["service"],
    summary: "`count` items, then the end or (failAfter) a failure",
    query: Schema.Struct({ count: Schema.FiniteFromString, fail: Schema.optionalKey(Schema.Literal("true")) }),
    responses: { 200: { description: "items", stream: { item: Tick, eventId: (tick: typeof Tick.Type) => String(tick.n), eventName: () => "tick" } } },
    handler: ({ query }) =>
      Effect.succeed({
        status: 200,
        stream: Stream.range(0, query.count - 1).pipe(
          Stream.map((n) => ({ n, pad: "" })),
          Stream.concat(query.fail === "true" ? Stream.fail(new NotFound({ detail: "the source went away" })) : Stream.empty)
        )
      })
  }),
  route({
    method: "GET", url: "/v1/test/quiet", tags: ["test"], roles: ["service"],
    summary: "a stream that never says anything",
    responses: { 200: { description: "nothing", stream: { item: Tick } } },
    handler: () => Effect.succeed({ status: 200, stream: Stream.never.pipe(Stream.ensuring(Deferred.succeed(quietFinalized, undefined))) })
  })
]

const get = (path: string, key: string, accept?: string) =>
  Effect.gen(function*() {
    const { url } = yield* TestApp
    return yield* Effect.promise(() => fetch(`${url}${path}`, { headers: { authorization: `Bearer ${key}`, ...(accept ? { accept } : {}) } }))
  })

layer(layerTestApp(routes), { excludeTestServices: true, timeout: 60_000 })("streamed answers", (it) => {
  describe("formats", () => {
    it.effect("NDJSON by default: one item a line, encoded by the item schema, then a clean end", () =>
      Effect.gen(function*() {
        const key = yield* (yield* TestApp).createKey("service")
        const res = yield* get("/v1/test/items?count=5", key)
        assert.strictEqual(res.status, 200)
        assert.strictEqual(res.headers.get("content-type"), "application/x-ndjson")
        assert.strictEqual(res.headers.get("cache-control"), "no-cache")
        const items = yield* ndjsonReader(res).take(10)
        assert.deepStrictEqual(items, [0, 1, 2, 3, 4].map((n) => ({ n, pad: "" })))
      }))

    it.effect("SSE when Accept asks for text/event-stream: each item an event with the route's id and name", () =>
      Effect.gen(function*() {
        const key = yield* (yield* TestApp).createKey("service")
        const res = yield* get("/v1/test/items?count=3", key, "text/event-stream")
        assert.strictEqual(res.headers.get("content-type"), "text/event-stream")
        const events = yield* sseReader(res).take(10)
        assert.deepStrictEqual(events, [0, 1, 2].map((n) => ({ id: String(n), event: "tick", data: JSON.stringify({ n, pad: "" }) })))
      }))

    it.effect("a failure after the headers: SSE ends with a problem event; NDJSON is cut off, not ended cleanly", () =>
      Effect.gen(function*() {
        const key = yield* (yield* TestApp).createKey("service")
        const events = yield* sseReader(yield* get("/v1/test/items?count=2&fail=true", key, "text/event-stream")).take(10)
        assert.deepStrictEqual(events.slice(0, 2).map((e) => e.id), ["0", "1"])
        assert.strictEqual(events.length, 3)
        assert.strictEqual(events[2]!.event, "problem")
        const problem = JSON.parse(events[2]!.data) as { status: number; code: string; detail: string }
        assert.deepStrictEqual([problem.status, problem.code, problem.detail], [404, "not-found", "the source went away"])

        // fetch drops what it had buffered when the body errors: read this one with node:http.
        const { url } = yield* TestApp
        const { hostname, port } = new URL(url)
        const cut = yield* Effect.callback<{ readonly text: string; readonly complete: boolean }>((resume) => {
          const request = httpRequest({ hostname, port, path: "/v1/test/items?count=2&fail=true", headers: { authorization: `Bearer ${key}` } })
          request.on("response", (response) => {
            const received = { text: "" }
            response.on("data", (chunk: Buffer) => received.text += chunk.toString("utf8"))
            response.on("error", () => undefined)
            response.on("close", () => resume(Effect.succeed({ text: received.text, complete: response.complete })))
          })
          request.end()
        })
        assert.deepStrictEqual(cut.text.trim().split("\n").map((line) => JSON.parse(line) as unknown), [{ n: 0, pad: "" }, { n: 1, pad: "" }])
        assert.isFalse(cut.complete, "the NDJSON answer ended as if it were whole")
      }))

    it.effect("errors before the stream starts are problem+json as usual", () =>
      Effect.gen(function*() {
        const res = yield* get("/v1/test/items?count=x", yield* (yield* TestApp).createKey("service"))
        assert.strictEqual(res.status, 400)
        assert.match(res.headers.get("content-type") ?? "", /^application\/problem\+json/)
        assert.strictEqual((yield* get("/v1/test/items?count=1", yield* (yield* TestApp).createKey("auditor"))).status, 403)
      }))
  })

  describe("backpressure and disconnects", () => {
    it.effect("a client that stops reading stops the producer; when it goes away the stream is interrupted and its finalizers run", () =>
      Effect.gen(function*() {
        const { url, createKey } = yield* TestApp
        const key = yield* createKey("service")
        const { hostname, port } = new URL(url)
        const request = httpRequest({ hostname, port, path: "/v1/test/ticks", headers: { authorization: `Bearer ${key}` } })
        const response = yield* Effect.callback<import("node:http").IncomingMessage>((resume) => {
          request.on("response", (res) => resume(Effect.succeed(res)))
          request.end()
        })
        assert.strictEqual(response.statusCode, 200)
        // Read a little, then stop reading: the socket fills and the server must stop producing.
        const firstChunk = yield* Effect.callback<Buffer>((resume) => {
          response.once("data", (chunk: Buffer) => resume(Effect.succeed(chunk)))
        })
        response.pause()
        assert.match(firstChunk.toString("utf8"), /^\{"n":0,/)
        const readings: Array<number> = []
        yield* eventually(
          Effect.sync(() => readings.push(ticks.produced)),
          () => readings.length > 5 && readings.slice(-5).every((n) => n === readings.at(-1)),
          "30 seconds"
        )
        const bytes = ticks.produced * (pad.length + 20)
        assert.isBelow(bytes, 64 * 1024 * 1024, `the server produced ${ticks.produced} items for a client that read one chunk`)
        assert.isFalse(Deferred.isDoneUnsafe(ticksFinalized))
        request.destroy()
        yield* Deferred.await(ticksFinalized)
      }))
  })
})

layer(layerTestApp(routes), { excludeTestServices: true, timeout: 60_000 })("streamed answers while the server closes", (it) => {
  it.effect("end cleanly, their streams' finalizers run, and the close is not held up", () =>
    Effect.gen(function*() {
      const { app, createKey } = yield* TestApp
      const key = yield* createKey("service")
      const res = yield* get("/v1/test/quiet", key, "text/event-stream")
      assert.strictEqual(res.status, 200)
      const events = sseReader(res)
      yield* Effect.promise(() => app.close())
      assert.deepStrictEqual(yield* events.take(1), [])
      yield* Deferred.await(quietFinalized)
    }))
})
