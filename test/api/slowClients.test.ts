/**
 * Issue 6, item 5: one client must not hold the server. Replayed over raw sockets against a running
 * platform: a request that sends its headers and then drips (or never sends) its body, one that drips
 * its headers, and a client guessing keys.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import { HttpServer } from "../../api/platform.ts"
import { createKey } from "../fixtures/http.ts"
import { ADMIN_KEY, layerTestPlatform } from "../fixtures/platform.ts"
import { awaitAnswer, awaitClosed, rawConnect } from "../fixtures/rawHttp.ts"

const problemOf = (answer: { readonly headers: Readonly<Record<string, string>>; readonly body: string }) => {
  assert.match(answer.headers["content-type"] ?? "", /^application\/problem\+json/)
  return JSON.parse(answer.body) as { readonly status: number; readonly code: string; readonly detail?: string }
}

const putHead = (id: string, headers: Record<string, string>) =>
  `PUT /v1/entities/advertiser/${id} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n` +
  Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join("") + "\r\n"

layer(layerTestPlatform({ HTTP_HEADERS_TIMEOUT: "1 second", HTTP_REQUEST_TIMEOUT: "2 seconds" }), { excludeTestServices: true, timeout: 120_000 })("slow clients", (it) => {
  describe("a request without a valid key", () => {
    it.effect("is answered 401 from its headers alone, before its body is read, and its connection is closed", () =>
      Effect.gen(function*() {
        const { url } = yield* HttpServer
        for (const authorization of [undefined, "Bearer not-a-key"]) {
          const connection = yield* rawConnect(url)
          // 1,000 bytes announced, none sent: the answer cannot wait for them.
          connection.socket.write(putHead("1", { "content-length": "1000", ...(authorization === undefined ? {} : { authorization }) }))
          const answer = yield* awaitAnswer(connection, "20 seconds")
          assert.strictEqual(answer.status, 401)
          assert.strictEqual(problemOf(answer).code, "unauthorized")
          assert.strictEqual(answer.headers["connection"], "close")
          yield* awaitClosed(connection, "20 seconds")
        }
      }))
  })

  describe("a request whose body drips", () => {
    it.effect("is answered 408 problem+json once HTTP_REQUEST_TIMEOUT has passed, and closed", () =>
      Effect.gen(function*() {
        const { url } = yield* HttpServer
        const connection = yield* rawConnect(url)
        connection.socket.write(putHead("2", { "content-length": "1000", authorization: `Bearer ${ADMIN_KEY}` }))
        connection.socket.write("{")
        yield* connection.drip(" ", 200)
        const answer = yield* awaitAnswer(connection, "30 seconds")
        assert.strictEqual(answer.status, 408)
        assert.strictEqual(problemOf(answer).code, "request-timeout")
        yield* awaitClosed(connection, "20 seconds")
      }))
  })

  describe("a request whose headers drip", () => {
    it.effect("is answered 408 problem+json once HTTP_HEADERS_TIMEOUT has passed, and closed", () =>
      Effect.gen(function*() {
        const { url } = yield* HttpServer
        const connection = yield* rawConnect(url)
        connection.socket.write("GET /health HTTP/1.1\r\nhost: localhost\r\n")
        yield* connection.drip("x-drip: 1\r\n", 200)
        const answer = yield* awaitAnswer(connection, "20 seconds")
        assert.strictEqual(answer.status, 408)
        assert.strictEqual(problemOf(answer).code, "request-timeout")
        yield* awaitClosed(connection, "20 seconds")
      }))
  })

  describe("what Node's HTTP parser refuses", () => {
    it.effect("headers over the limit are 431 and malformed HTTP is 400, both problem+json, and closed", () =>
      Effect.gen(function*() {
        const { url } = yield* HttpServer
        const cases = [
          { head: `GET /health HTTP/1.1\r\nhost: localhost\r\nx-big: ${"a".repeat(20_000)}\r\n\r\n`, status: 431, code: "headers-too-large" },
          { head: "NOT HTTP AT ALL\r\n\r\n", status: 400, code: "invalid-request" }
        ]
        for (const { head, status, code } of cases) {
          const connection = yield* rawConnect(url)
          connection.socket.write(head)
          const answer = yield* awaitAnswer(connection, "20 seconds")
          assert.strictEqual(answer.status, status)
          assert.strictEqual(problemOf(answer).code, code)
          yield* awaitClosed(connection, "20 seconds")
        }
      }))
  })

  describe("a request that arrives in time", () => {
    it.effect("is served as before, its body read, on a connection kept alive", () =>
      Effect.gen(function*() {
        const { url } = yield* HttpServer
        const { secret } = yield* createKey("service")
        const connection = yield* rawConnect(url)
        const body = JSON.stringify({ name: "On time" })
        connection.socket.write(putHead("3", { "content-length": String(body.length), authorization: `Bearer ${secret}` }) + body)
        const answer = yield* awaitAnswer(connection, "30 seconds")
        assert.strictEqual(answer.status, 201, answer.body)
        assert.isFalse(connection.isClosed())
      }))
  })
})

layer(layerTestPlatform({ AUTH_FAILURES_BURST: "5", AUTH_FAILURES_PER_SECOND: "0.01" }), { excludeTestServices: true, timeout: 120_000 })("key guessing", (it) => {
  describe("a client sending invalid keys", () => {
    it.effect("is answered 429 with Retry-After once its address used up AUTH_FAILURES_BURST, and its guesses are no longer looked at", () =>
      Effect.gen(function*() {
        const { url } = yield* HttpServer
        const guess = (key: string) =>
          Effect.promise(() => fetch(`${url}/v1/entities/advertiser/1`, { headers: { authorization: `Bearer ${key}` } }))
        for (let i = 0; i < 5; i++) assert.strictEqual((yield* guess(`guess-${i}`)).status, 401)
        const limited = yield* guess("guess-5")
        assert.strictEqual(limited.status, 429)
        assert.isAtLeast(Number(limited.headers.get("retry-after")), 1)
        const problem = (yield* Effect.promise(() => limited.json())) as { code: string; detail: string }
        assert.strictEqual(problem.code, "rate-limited")
        assert.include(problem.detail, "without a valid API key")
        // Even a right guess is not told apart now: the address waits like any other guess.
        assert.strictEqual((yield* guess(ADMIN_KEY)).status, 429)
        // Public routes are not keyed: still answered.
        assert.strictEqual((yield* Effect.promise(() => fetch(`${url}/health`))).status, 200)
      }))
  })
})
