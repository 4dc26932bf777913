/**
 * Issue 6, items 5 and 7: a flood of reads or commands is answered 503 with Retry-After at once,
 * before any body is read, instead of being queued without bound behind the platform's own work.
 */
import { get as httpGet } from "node:http"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as Admission from "../../api/admission.ts"
import { HttpServer } from "../../api/platform.ts"
import { join } from "node:path"
import { layerSqlite } from "../../infra/eventstore/sqlite.ts"
import { appendEntityEvents } from "../fixtures/entityEvents.ts"
import { layerTestNatsServer, TestNatsServer } from "../fixtures/nats.ts"
import { ADMIN_KEY, layerTestPlatform } from "../fixtures/platform.ts"
import { startPlatformProcess, waitUntilReady, platformEnv } from "../fixtures/platformProcess.ts"
import { awaitAnswer, awaitClosed, rawConnect } from "../fixtures/rawHttp.ts"
import { tempDir } from "../fixtures/tempDir.ts"

describe("admission", () => {
  it.live("admits up to its capacity, queues up to its queue in arrival order, refuses beyond at once", () =>
    Effect.promise(async () => {
      const gate = Admission.make("reads", { capacity: 2, queue: 2, maxWaitMillis: 60_000 })
      const first = await gate.enter()
      const second = await gate.enter()
      assert.isFunction(first)
      assert.isFunction(second)
      const order: Array<string> = []
      const third = gate.enter().then((slot) => (order.push("third"), slot))
      const fourth = gate.enter().then((slot) => (order.push("fourth"), slot))
      const refused = await gate.enter()
      assert.strictEqual((refused as Admission.Release & { _tag?: string })._tag, "Overloaded")
      assert.strictEqual(gate.active(), 2)
      ;(first as Admission.Release)()
      ;(first as Admission.Release)() // a second release gives nothing back twice
      assert.isFunction(await third)
      ;(second as Admission.Release)()
      assert.isFunction(await fourth)
      assert.deepStrictEqual(order, ["third", "fourth"])
      assert.strictEqual(gate.active(), 2)
    }))

  it.live("a waiter whose wait runs out is refused, and leaves the queue", () =>
    Effect.promise(async () => {
      const gate = Admission.make("reads", { capacity: 1, queue: 1, maxWaitMillis: 50 })
      const held = (await gate.enter()) as Admission.Release
      const late = await gate.enter()
      assert.strictEqual((late as unknown as { _tag: string })._tag, "Overloaded")
      held()
      assert.strictEqual(gate.active(), 0)
      assert.isFunction(await gate.enter())
    }))
})

layer(layerTestPlatform({ MAX_INFLIGHT_COMMANDS: "0" }), { excludeTestServices: true, timeout: 120_000 })("admission on a running platform", (it) => {
  describe("commands over MAX_INFLIGHT_COMMANDS", () => {
    it.effect("are answered 503 with Retry-After from their headers alone, without waiting for the body", () =>
      Effect.gen(function*() {
        const { url } = yield* HttpServer
        const connection = yield* rawConnect(url)
        // 500 bytes announced, none sent: admission must not wait for them.
        connection.socket.write(
          "PUT /v1/entities/advertiser/7 HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n" +
            `authorization: Bearer ${ADMIN_KEY}\r\ncontent-length: 500\r\n\r\n`
        )
        const answer = yield* awaitAnswer(connection, "20 seconds")
        assert.strictEqual(answer.status, 503)
        assert.strictEqual(answer.headers["retry-after"], "1")
        assert.match(answer.headers["content-type"] ?? "", /^application\/problem\+json/)
        assert.strictEqual((JSON.parse(answer.body) as { code: string }).code, "overloaded")
        yield* awaitClosed(connection, "20 seconds")
      }))
  })
})

interface ReadAnswer {
  readonly status: number
  readonly retryAfter: string | undefined
  readonly type: string
  readonly body: { readonly code?: string; readonly events?: ReadonlyArray<unknown> }
}

/** One GET on a connection of its own (no pooling): what one of many clients does. */
const get = (url: string, key: string) =>
  new Promise<ReadAnswer>((resolve, reject) => {
    const request = httpGet(url, { agent: false, headers: { authorization: `Bearer ${key}` } }, (res) => {
      let text = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (text += chunk))
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, retryAfter: res.headers["retry-after"], type: res.headers["content-type"] ?? "", body: JSON.parse(text) as ReadAnswer["body"] }))
    })
    request.on("error", reject)
  })

describe("reads over MAX_CONCURRENT_READS and READ_QUEUE", () => {
  // The platform runs in a process of its own, so the clients' connections reach it at once, as they would from many machines.
  it.live("300 concurrent GET /v1/history?limit=1000: those past the bound are 503 with Retry-After, the rest answered in full", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("reads")
      const nats = yield* TestNatsServer
      yield* appendEntityEvents({ type: "advertiser", id: "1" }, 1_000).pipe(Effect.provide(layerSqlite({ path: join(dataDir, "events.db") })))
      const platform = yield* startPlatformProcess(platformEnv(nats, dataDir, ADMIN_KEY, {
        MAX_CONCURRENT_READS: "2",
        READ_QUEUE: "2"
      }), dataDir)
      yield* waitUntilReady(platform)
      const answers = yield* Effect.promise(() => Promise.all(Array.from({ length: 300 }, () => get(`${platform.base}/v1/history?limit=1000`, ADMIN_KEY))))
      const refused = answers.filter((a) => a.status === 503)
      const served = answers.filter((a) => a.status === 200)
      assert.strictEqual(refused.length + served.length, answers.length, JSON.stringify(answers.find((a) => a.status !== 200 && a.status !== 503)))
      assert.isAbove(refused.length, 0, "some of 300 concurrent reads are refused")
      assert.isAbove(served.length, 0)
      for (const a of refused) {
        assert.strictEqual(a.retryAfter, "1")
        assert.match(a.type, /^application\/problem\+json/)
        assert.strictEqual(a.body.code, "overloaded")
      }
      for (const a of served) assert.strictEqual(a.body.events?.length, 1_000)
    }).pipe(Effect.provide(layerTestNatsServer()), Effect.scoped), { timeout: 240_000 })
})
