/**
 * A read whose client goes away before its answer is interrupted: what it waits for it waits for no more
 * (stop 24's second outside attack: metrics queries whose clients had gone kept their places in the
 * line for the rollups' reader, and a light query was answered 503). A write goes on: its client retries
 * with its Idempotency-Key. Real HTTP clients on a real listening app.
 */
import { request as httpRequest } from "node:http"
import { assert, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { route } from "../../api/route.ts"
import { eventually } from "../fixtures/http.ts"
import { layerTestApp, TEST_APP_ADMIN_KEY, TestApp } from "../fixtures/app.ts"

const ended = { reads: 0, writes: 0 }

/** Waits until interrupted, counting the interruption. */
const waitForever = (kind: keyof typeof ended) =>
  Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => void ended[kind]++)))

const routes = [
  route({
    method: "GET", url: "/v1/test/slow-read", tags: ["test"], roles: ["service"], admission: "reads",
    summary: "a read that waits", responses: { 200: { description: "ok", schema: Schema.Struct({}) } },
    handler: () => waitForever("reads")
  }),
  route({
    method: "POST", url: "/v1/test/slow-write", tags: ["test"], roles: ["service"], admission: "commands",
    summary: "a write that waits", responses: { 202: { description: "accepted" } },
    handler: () => waitForever("writes").pipe(Effect.as({ status: 202 as const }))
  })
]

/** Sends a request and closes its connection once it is sent. */
const leave = (url: string, method: string, path: string) =>
  Effect.promise(() => new Promise<void>((resolve) => {
    const req = httpRequest(`${url}${path}`, { method, headers: { authorization: `Bearer ${TEST_APP_ADMIN_KEY}` } })
    req.on("error", () => resolve())
    req.end(() => setTimeout(() => {
      req.destroy()
      resolve()
    }, 200))
  }))

layer(layerTestApp(routes), { excludeTestServices: true, timeout: 30_000 })("a read whose client went away", (it) => {
  it.effect("is interrupted; a write is not", () =>
    Effect.gen(function*() {
      const { url } = yield* TestApp
      yield* Effect.all([leave(url, "GET", "/v1/test/slow-read"), leave(url, "GET", "/v1/test/slow-read"), leave(url, "POST", "/v1/test/slow-write")], { concurrency: "unbounded" })
      yield* eventually(Effect.sync(() => ended.reads), (n) => n === 2, "10 seconds")
      assert.strictEqual(ended.writes, 0)
    }))
})
