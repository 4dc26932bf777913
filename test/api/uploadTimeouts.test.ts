/**
 * Uploads are bounded by their pace, not by HTTP_REQUEST_TIMEOUT: a partner file of any size arrives
 * over an ordinary link for as long as it keeps coming, while a stalled or trickling upload is closed;
 * every other route keeps the whole-request deadline. Replayed over raw sockets against a platform.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { existsSync, readdirSync } from "node:fs"
import { join } from "node:path"
import { Clock, ConfigProvider, Context, Duration, Effect, Layer, Schema, Stream } from "effect"
import { PlatformConfig } from "../../api/config.ts"
import { HttpServer } from "../../api/platform.ts"
import { route } from "../../api/route.ts"
import { upload } from "../../api/streaming.ts"
import { IngestJobs } from "../../domain/ingest/Job.ts"
import { layerTestApp, TestApp } from "../fixtures/app.ts"
import { eventually, partnerKey } from "../fixtures/http.ts"
import { ADMIN_KEY, layerTestPlatform } from "../fixtures/platform.ts"
import { awaitAnswer, awaitClosed, type RawAnswer, rawConnect } from "../fixtures/rawHttp.ts"
import { tempDir } from "../fixtures/tempDir.ts"

class DataDir extends Context.Service<DataDir, string>()("test/DataDir") {}

const REQUEST_TIMEOUT_MILLIS = 2_000
const IDLE_MILLIS = 2_000

const platform = Layer.unwrap(Effect.map(tempDir("upload-timeouts"), (dir) =>
  Layer.merge(
    layerTestPlatform({
      DATA_DIR: dir,
      HTTP_HEADERS_TIMEOUT: "1 second",
      HTTP_REQUEST_TIMEOUT: `${REQUEST_TIMEOUT_MILLIS} millis`,
      UPLOAD_IDLE_TIMEOUT: `${IDLE_MILLIS} millis`,
      UPLOAD_MIN_BYTES_PER_SECOND: "1024",
      UPLOAD_MAX_CONCURRENT_PER_PARTNER: "2"
    }),
    Layer.succeed(DataDir, dir)
  )))

const problemOf = (answer: RawAnswer) => {
  assert.match(answer.headers["content-type"] ?? "", /^application\/problem\+json/)
  return JSON.parse(answer.body) as { readonly status: number; readonly code: string; readonly detail?: string }
}

const uploadHead = (partner: string, key: string, length: number) =>
  `POST /v1/ingest/${partner}/files HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer ${key}\r\n` +
  `content-type: text/csv\r\ncontent-length: ${length}\r\n\r\n`

/** Files of `partner` under DATA_DIR/uploads, and any upload still being written (.incoming). */
const storedFiles = (dataDir: string, partner: string) => {
  const dir = join(dataDir, "uploads")
  return existsSync(dir)
    ? readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
      .filter((f) => f.startsWith(`${partner}/`) || f.startsWith(".incoming/"))
    : []
}

/** Nothing of the partner's upload is kept: no file, no job. */
const nothingKept = (partner: string) =>
  Effect.gen(function*() {
    const dataDir = yield* DataDir
    yield* eventually(Effect.sync(() => storedFiles(dataDir, partner)), (files) => files.length === 0, "30 seconds")
    assert.deepStrictEqual(yield* IngestJobs.use((jobs) => jobs.list(partner, { limit: 10 })), [])
  })

layer(platform, { excludeTestServices: true, timeout: 120_000 })("upload timeouts", (it) => {
  describe("an upload that keeps sending", () => {
    it.effect("completes with 202 although it lasts well past HTTP_REQUEST_TIMEOUT", () =>
      Effect.gen(function*() {
        const { url } = yield* HttpServer
        const key = yield* partnerKey("steady")
        const line = "user-1,seg-a\n".repeat(160) // about 2 KiB a write, 10 writes a second: 20 KiB/s
        const writes = 30
        const connection = yield* rawConnect(url)
        const started = yield* Clock.currentTimeMillis
        connection.socket.write(uploadHead("steady", key, line.length * writes))
        for (let i = 0; i < writes; i++) {
          connection.socket.write(line)
          yield* Effect.sleep("150 millis")
        }
        const answer = yield* awaitAnswer(connection, "30 seconds")
        assert.strictEqual(answer.status, 202, answer.body)
        // By construction (30 writes 150 ms apart), not a measurement of the server.
        assert.isAbove((yield* Clock.currentTimeMillis) - started, 2 * REQUEST_TIMEOUT_MILLIS)
        const { job } = JSON.parse(answer.body) as { job: { state: string; bytes: number } }
        assert.deepStrictEqual([job.state, job.bytes], ["stored", line.length * writes])
        assert.isFalse(connection.isClosed())
      }))
  })

  describe("an upload that stalls", () => {
    it.effect("is answered 408 problem+json once no byte came for UPLOAD_IDLE_TIMEOUT, and closed, with no job and no stored file", () =>
      Effect.gen(function*() {
        const { url } = yield* HttpServer
        const key = yield* partnerKey("stalls")
        const connection = yield* rawConnect(url)
        const started = yield* Clock.currentTimeMillis
        // 100,000 bytes announced, 20,000 sent, then nothing.
        connection.socket.write(uploadHead("stalls", key, 100_000) + "user-1,seg-a\n".repeat(1_540))
        const answer = yield* awaitAnswer(connection, "30 seconds")
        assert.strictEqual(answer.status, 408, answer.body)
        const problem = problemOf(answer)
        assert.strictEqual(problem.code, "request-timeout")
        assert.include(problem.detail, "no byte of the body arrived")
        // The server cannot have given up before the idle timeout (a lower bound, not a measurement).
        assert.isAtLeast((yield* Clock.currentTimeMillis) - started, IDLE_MILLIS)
        yield* awaitClosed(connection, "20 seconds")
        yield* nothingKept("stalls")
      }))
  })

  /** An upload of `partner` that sends `first` bytes at once, then 20 bytes every 200 ms (100 bytes a second, never idle for UPLOAD_IDLE_TIMEOUT): answered 408 naming the pace, closed, nothing kept. */
  const trickled = (partner: string, first: number, detail: string) =>
    Effect.gen(function*() {
      const { url } = yield* HttpServer
      const key = yield* partnerKey(partner)
      const connection = yield* rawConnect(url)
      connection.socket.write(uploadHead(partner, key, 1_000_000) + "x".repeat(first))
      yield* connection.drip("user-1,seg-abcdefg\n", 200)
      const answer = yield* awaitAnswer(connection, "30 seconds")
      assert.strictEqual(answer.status, 408, answer.body)
      assert.include(problemOf(answer).detail, detail)
      yield* awaitClosed(connection, "20 seconds")
      yield* nothingKept(partner)
    })

  describe("an upload that trickles", () => {
    it.effect("is answered 408 once it averages under UPLOAD_MIN_BYTES_PER_SECOND past the first idle window, though a byte never waits that long", () =>
      trickled("trickles", 0, "under 1024 bytes a second"))
  })

  describe("an upload that starts fast, then trickles", () => {
    // 200 KiB at once: averaged over the whole upload, that was 200 s of credit at 1,024 bytes a second
    // (the rule before stop 20)
    it.effect("banks no credit: 408 once the last UPLOAD_IDLE_TIMEOUT of waiting brought under UPLOAD_MIN_BYTES_PER_SECOND", () =>
      trickled("banks", 200 * 1024, "under 1024 bytes a second over 2 s of waiting"))
  })

  describe("a partner sending many files at once", () => {
    it.effect("holds at most UPLOAD_MAX_CONCURRENT_PER_PARTNER slots: its next upload is answered 503 + Retry-After, another partner's goes in", () =>
      Effect.gen(function*() {
        const { url } = yield* HttpServer
        const key = yield* partnerKey("many")
        const other = yield* partnerKey("other")
        const lines = "user-1,seg-a\n".repeat(160) // about 2 KiB every 500 ms: well above the minimum pace
        const held = [yield* rawConnect(url), yield* rawConnect(url)]
        for (const connection of held) {
          connection.socket.write(uploadHead("many", key, 1_000_000) + lines)
          yield* connection.drip(lines, 500)
        }
        // both held uploads are being written to storage before the third comes
        const dataDir = yield* DataDir
        yield* eventually(Effect.sync(() => storedFiles(dataDir, "many").filter((f) => f.startsWith(".incoming/")).length), (n) => n >= 2, "10 seconds")
        const third = yield* rawConnect(url)
        third.socket.write(uploadHead("many", key, lines.length) + lines)
        const refused = yield* awaitAnswer(third, "30 seconds")
        assert.strictEqual(refused.status, 503, refused.body)
        assert.strictEqual(refused.headers["retry-after"], "1")
        assert.include(problemOf(refused).detail, "partner:many has 2 uploads in progress")
        // another partner is not held up
        const answer = yield* Effect.promise(() =>
          fetch(`${url}/v1/ingest/other/files`, { method: "POST", headers: { authorization: `Bearer ${other}`, "content-type": "text/csv" }, body: lines }))
        assert.strictEqual(answer.status, 202, yield* Effect.promise(() => answer.text()))
        // one held upload goes away: its slot comes back to the partner
        held[0]!.socket.destroy()
        yield* eventually(
          Effect.promise(() =>
            fetch(`${url}/v1/ingest/many/files`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "text/csv" }, body: lines })
              .then((res) => res.status)),
          (status) => status === 202,
          "20 seconds"
        )
      }))
  })

  describe("a real-time body that keeps coming", () => {
    it.effect("is answered 408 once it has not arrived whole within HTTP_REQUEST_TIMEOUT, though it keeps the upload pace", () =>
      Effect.gen(function*() {
        const { url } = yield* HttpServer
        const key = yield* partnerKey("realtime-drips")
        const connection = yield* rawConnect(url)
        connection.socket.write(
          `POST /v1/ingest/realtime-drips/records HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer ${key}\r\n` +
            `content-type: application/x-ndjson\r\ncontent-length: 1000000\r\n\r\n`
        )
        // 1,500 bytes every 500 ms: three times the minimum pace, but 1 MB would take minutes
        yield* connection.drip(" ".repeat(1_500), 500)
        const answer = yield* awaitAnswer(connection, "30 seconds")
        assert.strictEqual(answer.status, 408, answer.body)
        assert.include(problemOf(answer).detail, "a real-time body must arrive whole within")
        yield* awaitClosed(connection, "20 seconds")
        assert.deepStrictEqual(yield* IngestJobs.use((jobs) => jobs.list("realtime-drips", { limit: 10 })), [])
      }))
  })

  describe("a JSON route whose body drips", () => {
    it.effect("is still answered 408 problem+json at HTTP_REQUEST_TIMEOUT, and closed", () =>
      Effect.gen(function*() {
        const { url } = yield* HttpServer
        const connection = yield* rawConnect(url)
        connection.socket.write(
          `PUT /v1/entities/advertiser/drips HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n` +
            `authorization: Bearer ${ADMIN_KEY}\r\ncontent-length: 100000\r\n\r\n{`
        )
        // A byte every 100 ms: steady enough for an upload, but this route's whole request has a deadline.
        yield* connection.drip(" ", 100)
        const answer = yield* awaitAnswer(connection, "30 seconds")
        assert.strictEqual(answer.status, 408, answer.body)
        assert.strictEqual(problemOf(answer).code, "request-timeout")
        yield* awaitClosed(connection, "20 seconds")
      }))
  })
})

const BUSY_IDLE_MILLIS = 1_000

// Reads one chunk, is busy for three idle timeouts, then reads the rest.
const busyRoute = route({
  method: "POST", url: "/v1/test/busy-uploads", tags: ["test"], roles: ["service"],
  summary: "a handler slower than its client",
  body: upload({ contentTypes: ["application/octet-stream"], maxBytes: 64 * 1024 * 1024, description: "any bytes." }),
  responses: { 200: { description: "bytes read", schema: Schema.Struct({ bytes: Schema.Int }) } },
  handler: ({ body }) =>
    Effect.gen(function*() {
      const read = { bytes: 0, chunks: 0 }
      yield* Stream.runForEach(body, (chunk) =>
        Effect.gen(function*() {
          read.bytes += chunk.byteLength
          if (read.chunks++ === 0) yield* Effect.sleep(Duration.millis(3 * BUSY_IDLE_MILLIS))
        }))
      return { status: 200, body: { bytes: read.bytes } }
    })
})
layer(layerTestApp([busyRoute], { uploadPace: { idleMillis: BUSY_IDLE_MILLIS, minBytesPerSecond: 1024 } }), { timeout: 60_000 })("upload pace", (it) => {
  it.effect("counts only the time the server waits for the client: a handler busy for longer than the idle timeout does not close the upload", () =>
    Effect.gen(function*() {
      const { url, createKey: keyFor } = yield* TestApp
      const key = yield* keyFor("service")
      // 8 MiB: more than the socket buffers hold, so the client is held back while the handler is busy.
      const body = Buffer.alloc(8 * 1024 * 1024, "x")
      const res = yield* Effect.promise(() =>
        fetch(`${url}/v1/test/busy-uploads`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/octet-stream" }, body })
      )
      const text = yield* Effect.promise(() => res.text())
      assert.strictEqual(res.status, 200, text)
      assert.deepStrictEqual(JSON.parse(text), { bytes: body.length })
    }), { timeout: 60_000 })
})

describe("the upload pace and share settings", () => {
  it.effect("default to 30 s without a byte, 16 KiB/s and 4 files a partner, are read from the environment, and refuse what makes no sense", () =>
    Effect.gen(function*() {
      const parse = (env: Record<string, string>) => PlatformConfig.parse(ConfigProvider.fromEnvRecord(env))
      const defaults = yield* parse({})
      assert.deepStrictEqual([Duration.toMillis(defaults.uploadIdleTimeout), defaults.uploadMinBytesPerSecond, defaults.uploadMaxConcurrentPerPartner], [30_000, 16_384, 4])
      const set = yield* parse({ UPLOAD_IDLE_TIMEOUT: "2 minutes", UPLOAD_MIN_BYTES_PER_SECOND: "0", UPLOAD_MAX_CONCURRENT_PER_PARTNER: "32" })
      assert.deepStrictEqual([Duration.toMillis(set.uploadIdleTimeout), set.uploadMinBytesPerSecond, set.uploadMaxConcurrentPerPartner], [120_000, 0, 32])
      const bads: Array<Record<string, string>> = [
        { UPLOAD_IDLE_TIMEOUT: "soon" },
        { UPLOAD_MIN_BYTES_PER_SECOND: "-1" },
        { UPLOAD_MIN_BYTES_PER_SECOND: "1.5" },
        { UPLOAD_MAX_CONCURRENT_PER_PARTNER: "0" }
      ]
      for (const bad of bads) {
        yield* Effect.flip(parse(bad))
      }
    }))
})
