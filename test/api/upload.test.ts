import { assert, describe, layer } from "@effect/vitest"
import { createHash } from "node:crypto"
import { request as httpRequest } from "node:http"
import { Readable } from "node:stream"
import { gzipSync } from "node:zlib"
import { Deferred, Effect, Schema, Stream } from "effect"
import { route } from "../../api/route.ts"
import { upload } from "../../api/streaming.ts"
import { layerTestApp, TestApp } from "../fixtures/app.ts"
import { eventually } from "../fixtures/http.ts"

const MB = 1024 * 1024
const Digest = Schema.Struct({ bytes: Schema.Int, sha256: Schema.String })

/** Reads the whole body as it arrives, keeping only a count and a running digest. */
const digest = (body: Stream.Stream<Uint8Array, unknown>) =>
  Effect.gen(function*() {
    const hash = createHash("sha256")
    const total = { bytes: 0 }
    yield* Stream.runForEach(body, (chunk) => Effect.sync(() => {
      hash.update(chunk)
      total.bytes += chunk.byteLength
    }))
    return { bytes: total.bytes, sha256: hash.digest("hex") }
  })

// Held by the slow route after its first chunk until the test lets it go on.
const slowGate = Deferred.makeUnsafe<void>()
const slowStarted = Deferred.makeUnsafe<void>()

// Shaped like the partner file upload that ingestion will add.
const routes = [
  route({
    method: "POST", url: "/v1/test/uploads", tags: ["test"], roles: ["service"],
    summary: "digests a streamed file",
    body: upload({ contentTypes: ["application/octet-stream", "application/gzip"], maxBytes: 1024 * MB, description: "any bytes." }),
    responses: { 200: { description: "what was read", schema: Digest } },
    handler: ({ body }) => Effect.map(digest(body), (read) => ({ status: 200, body: read }))
  }),
  route({
    method: "POST", url: "/v1/test/small-uploads", tags: ["test"], roles: ["service"],
    summary: "digests at most 1 MiB",
    body: upload({ contentTypes: ["application/octet-stream"], maxBytes: MB, description: "at most 1 MiB." }),
    responses: { 200: { description: "what was read", schema: Digest } },
    handler: ({ body }) => Effect.map(digest(body), (read) => ({ status: 200, body: read }))
  }),
  route({
    method: "POST", url: "/v1/test/slow-uploads", tags: ["test"], roles: ["service"],
    summary: "reads one chunk, waits for the test, then reads the rest",
    body: upload({ contentTypes: ["application/octet-stream"], maxBytes: 1024 * MB, description: "any bytes." }),
    responses: { 200: { description: "what was read", schema: Digest } },
    handler: ({ body }) =>
      Effect.map(
        digest(body.pipe(Stream.tap(() => Effect.andThen(Deferred.succeed(slowStarted, undefined), Deferred.await(slowGate))))),
        (read) => ({ status: 200, body: read })
      )
  })
]

interface Sent {
  /** bytes the client has produced so far (pulled by the socket) */
  readonly produced: () => number
  readonly sha256: () => string
  readonly response: Promise<{ readonly status: number; readonly headers: Record<string, unknown>; readonly body: string }>
}

/**
 * Sends `total` bytes of a repeating random block over a real socket, generated only as the socket
 * takes them, so the client holds no more than one block either.
 */
const send = (url: string, path: string, options: {
  readonly key: string
  readonly total: number
  readonly contentType?: string
  readonly declareLength?: boolean
  readonly headers?: Record<string, string>
  readonly payload?: Buffer
}): Sent => {
  const block = createHash("sha512").update(path).digest()
  const chunk = Buffer.concat(Array.from({ length: (64 * 1024) / block.length }, () => block))
  const hash = createHash("sha256")
  const state = { produced: 0 }
  const body = options.payload !== undefined ? Readable.from([options.payload]) : Readable.from((function*() {
    while (state.produced < options.total) {
      const part = chunk.subarray(0, Math.min(chunk.length, options.total - state.produced))
      state.produced += part.length
      hash.update(part)
      yield part
    }
  })(), { objectMode: false, highWaterMark: 64 * 1024 })
  const { hostname, port } = new URL(url)
  const response = new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
    const req = httpRequest({
      hostname, port, path, method: "POST",
      headers: {
        authorization: `Bearer ${options.key}`,
        "content-type": options.contentType ?? "application/octet-stream",
        ...(options.declareLength === false ? {} : { "content-length": String(options.payload?.length ?? options.total) }),
        ...options.headers
      }
    }, (res) => {
      const parts: Array<Buffer> = []
      res.on("data", (part: Buffer) => parts.push(part))
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString("utf8") })
        // An answer before the end of the body: stop sending.
        body.destroy()
        req.destroy()
      })
    })
    req.on("error", reject)
    body.pipe(req)
  })
  return { produced: () => state.produced, sha256: () => hash.digest("hex"), response }
}

const answer = (sent: Sent) => Effect.promise(() => sent.response)

const assertProblem = (res: { status: number; headers: Record<string, unknown>; body: string }, status: number, code: string) => {
  assert.strictEqual(res.status, status, res.body)
  assert.match(String(res.headers["content-type"]), /^application\/problem\+json/)
  assert.strictEqual((JSON.parse(res.body) as { code: string }).code, code)
}

layer(layerTestApp(routes), { excludeTestServices: true, timeout: 120_000 })("streamed uploads", (it) => {
  describe("a large body", () => {
    it.effect("is read as a stream: 512 MiB digested while the process's memory stays far below the body's size", () =>
      Effect.gen(function*() {
        const { url, createKey } = yield* TestApp
        const key = yield* createKey("service")
        const total = 512 * MB
        const before = process.memoryUsage().rss
        const peak = { rss: before }
        const sampler = setInterval(() => {
          peak.rss = Math.max(peak.rss, process.memoryUsage().rss)
        }, 5)
        const sent = send(url, "/v1/test/uploads", { key, total })
        const res = yield* answer(sent).pipe(Effect.ensuring(Effect.sync(() => clearInterval(sampler))))
        assert.strictEqual(res.status, 200, res.body)
        assert.deepStrictEqual(JSON.parse(res.body), { bytes: total, sha256: sent.sha256() })
        // Client and server share this process: both together hold a small fraction of the body (about
        // 80 MiB here, the same for 400 or 800 MiB: garbage buffers until the next collection).
        const grown = peak.rss - before
        assert.isBelow(grown, total / 4, `RSS grew by ${Math.round(grown / MB)} MiB while ${total / MB} MiB went through`)
      }))

    it.effect("is pulled from the socket only as fast as the handler reads: a stalled handler stalls the client", () =>
      Effect.gen(function*() {
        const { url, createKey } = yield* TestApp
        const key = yield* createKey("service")
        const total = 256 * MB
        const sent = send(url, "/v1/test/slow-uploads", { key, total })
        yield* Deferred.await(slowStarted)
        // The client stops making progress once the socket buffers are full...
        const readings: Array<number> = []
        yield* eventually(
          Effect.sync(() => readings.push(sent.produced())),
          () => readings.length > 5 && readings.slice(-5).every((n) => n === readings.at(-1)),
          "30 seconds"
        ).pipe(Effect.andThen(Effect.sleep("1 millis")))
        const stalledAt = sent.produced()
        assert.isBelow(stalledAt, 64 * MB, `the client sent ${Math.round(stalledAt / MB)} MiB to a handler that had read one chunk`)
        // ...and finishes once the handler reads on.
        yield* Deferred.succeed(slowGate, undefined)
        const res = yield* answer(sent)
        assert.strictEqual(res.status, 200, res.body)
        assert.deepStrictEqual(JSON.parse(res.body), { bytes: total, sha256: sent.sha256() })
      }))
  })

  describe("limits and media types", () => {
    it.effect("a declared length over the route's limit is 413 problem+json before the body is read", () =>
      Effect.gen(function*() {
        const { url, createKey } = yield* TestApp
        const key = yield* createKey("service")
        const sent = send(url, "/v1/test/small-uploads", { key, total: 1024 * MB })
        const res = yield* answer(sent)
        assertProblem(res, 413, "payload-too-large")
        assert.strictEqual(res.headers.connection, "close")
        assert.isBelow(sent.produced(), 64 * MB)
      }))

    it.effect("a chunked body is 413 as soon as it passes the limit, without reading the rest", () =>
      Effect.gen(function*() {
        const { url, createKey } = yield* TestApp
        const key = yield* createKey("service")
        const sent = send(url, "/v1/test/small-uploads", { key, total: 1024 * MB, declareLength: false })
        const res = yield* answer(sent)
        assertProblem(res, 413, "payload-too-large")
        assert.isBelow(sent.produced(), 64 * MB)
        // Under the limit, the same route reads it all.
        const small = send(url, "/v1/test/small-uploads", { key, total: 1000 * 1000, declareLength: false })
        const ok = yield* answer(small)
        assert.strictEqual(ok.status, 200, ok.body)
        assert.deepStrictEqual(JSON.parse(ok.body), { bytes: 1000 * 1000, sha256: small.sha256() })
      }))

    it.effect("Content-Encoding gzip is decoded: the handler reads the file, the limit counts decoded bytes, and a bomb is 413", () =>
      Effect.gen(function*() {
        const { url, createKey } = yield* TestApp
        const key = yield* createKey("service")
        // 3 MiB of lines like a partner file's: they compress a few times, as such files do
        const lines = Array.from({ length: 120_000 }, (_, i) => `ck-${(i * 7919).toString(36)},${i % 97}|${(i * 31) % 1009},${1_795_000_000 + i}\n`).join("")
        const file = Buffer.from(lines.repeat(Math.ceil(3 * MB / lines.length))).subarray(0, 3 * MB)
        const res = yield* answer(send(url, "/v1/test/uploads", { key, total: 0, payload: gzipSync(file), headers: { "content-encoding": "gzip" } }))
        assert.strictEqual(res.status, 200, res.body)
        assert.deepStrictEqual(JSON.parse(res.body), { bytes: file.length, sha256: createHash("sha256").update(file).digest("hex") })
        // A gzip file sent as such is bytes like any other.
        const gz = gzipSync(file)
        const raw = yield* answer(send(url, "/v1/test/uploads", { key, total: 0, payload: gz, contentType: "application/gzip" }))
        assert.deepStrictEqual(JSON.parse(raw.body), { bytes: gz.length, sha256: createHash("sha256").update(gz).digest("hex") })
        // 3 MiB that compress to less still pass 1 MiB once decoded.
        const over = yield* answer(send(url, "/v1/test/small-uploads", { key, total: 0, payload: gz, headers: { "content-encoding": "gzip" } }))
        assertProblem(over, 413, "payload-too-large")
        // A bomb: 64 MiB of one repeated line sent as ~64 KiB (before, stored whole up to the route's 1 GiB)
        const bomb = yield* answer(send(url, "/v1/test/uploads", { key, total: 0, payload: gzipSync(Buffer.alloc(64 * MB, "line of a partner file\n")), headers: { "content-encoding": "gzip" } }))
        assertProblem(bomb, 413, "payload-too-large")
        assert.include(JSON.parse(bomb.body).detail, "gzip bomb")
        // Compressed twice: each layer could inflate 200 times, the door bounding the outer one and a
        // translator the inner one against what was stored (stop 31's outside attack: 667 bytes, 14 million lines)
        const twice = yield* answer(send(url, "/v1/test/uploads", { key, total: 0, payload: gzipSync(gz), contentType: "application/gzip", headers: { "content-encoding": "gzip" } }))
        assertProblem(twice, 415, "unsupported-media-type")
        assert.include(JSON.parse(twice.body).detail, "compressed twice")
      }))

    it.effect("an undeclared media type or encoding is 415, and a bad key is 401, neither reading the body", () =>
      Effect.gen(function*() {
        const { url, createKey } = yield* TestApp
        const key = yield* createKey("service")
        assertProblem(yield* answer(send(url, "/v1/test/small-uploads", { key, total: 1000, contentType: "text/csv" })), 415, "unsupported-media-type")
        assertProblem(
          yield* answer(send(url, "/v1/test/small-uploads", { key, total: 1000, headers: { "content-encoding": "br" } })),
          415, "unsupported-media-type"
        )
        const unauthorized = send(url, "/v1/test/uploads", { key: "nope", total: 512 * MB })
        assertProblem(yield* answer(unauthorized), 401, "unauthorized")
        assert.isBelow(unauthorized.produced(), 64 * MB)
      }))
  })
})
