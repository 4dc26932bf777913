/**
 * The platform as it runs for real: its own nats-server from nats.conf, and `api/main.ts` in a
 * process of its own, stopped with SIGTERM while commands are in flight.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { connect } from "@nats-io/transport-node"
import { ConfigProvider, Context, Effect, Layer } from "effect"
import { PlatformConfig } from "../../api/config.ts"
import { HttpServer, layer, NatsAccess } from "../../api/platform.ts"
import { freePort } from "../../infra/nats/NatsServer.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const main = fileURLToPath(new URL("../../api/main.ts", import.meta.url))
const ADMIN = "lifecycle-admin-key-0123"

const canConnect = (url: string, user?: string, pass?: string) =>
  connect({ servers: url, reconnect: false, ...(user === undefined ? {} : { user, pass }) }).then((nc) => nc.close().then(() => true), () => false)

describe("embedded mode", () => {
  it.live("starts nats-server from nats.conf, keeps the reader's password in DATA_DIR, and stops the server with the platform", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("embedded")
      const config = yield* PlatformConfig.parse(ConfigProvider.fromEnvRecord({
        PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir, NATS_PORT: String(yield* freePort()), ADMIN_API_KEY: ADMIN
      }))
      const nats = yield* Effect.scoped(Effect.gen(function*() {
        const context = yield* Layer.build(layer(config))
        const { app } = Context.get(context, HttpServer)
        const access = Context.get(context, NatsAccess)
        const put = yield* Effect.promise(() =>
          app.inject({ method: "PUT", url: "/v1/entities/advertiser/1", headers: { authorization: `Bearer ${ADMIN}` }, payload: { name: "Acme" } }))
        assert.strictEqual(put.statusCode, 201, put.body)
        assert.strictEqual(access.reader?.password, readFileSync(join(dataDir, "nats-reader.password"), "utf8").trim())
        assert.isTrue(yield* Effect.promise(() => canConnect(access.url, access.reader!.user, access.reader!.password)))
        assert.isFalse(yield* Effect.promise(() => canConnect(access.url)), "anonymous clients are refused")
        return access
      }))
      assert.isFalse(yield* Effect.promise(() => canConnect(nats.url, nats.reader!.user, nats.reader!.password)), "the server stopped")
    }))
})

/** `node api/main.ts` in its own process; SIGKILLed if the test ends first. */
const startPlatform = (env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, ["--no-warnings", main], { env: { ...process.env, ...env }, stdio: "ignore" })
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
      return { child, exited }
    }),
    ({ child }) => Effect.sync(() => void child.kill("SIGKILL"))
  )

const waitUntilReady = (base: string) =>
  Effect.promise(async () => {
    for (let i = 0; i < 400; i++) {
      const ok = await fetch(`${base}/ready`).then((r) => r.ok, () => false)
      if (ok) return
      await new Promise((r) => setTimeout(r, 50))
    }
    throw new Error("the platform did not become ready")
  })

const put = (base: string, id: number) =>
  fetch(`${base}/v1/entities/advertiser/${id}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json", "idempotency-key": `k${id}` },
    body: JSON.stringify({ name: `Advertiser ${id}` })
  }).then((r) => r.status, () => 0)

describe("npm start", () => {
  it.live("drains on SIGTERM: commands in flight are answered, the server stops, and each command is applied once across the restart", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("lifecycle")
      const env = { HOST: "127.0.0.1", DATA_DIR: dataDir, ADMIN_API_KEY: ADMIN, PORT: String(yield* freePort()), NATS_PORT: String(yield* freePort()) }
      const base = `http://127.0.0.1:${env.PORT}`
      const ids = Array.from({ length: 300 }, (_, i) => i + 1)

      const first = yield* startPlatform(env)
      yield* waitUntilReady(base)
      const answers = ids.map((id) => put(base, id))
      // Stop it while commands are in flight: once the first is answered (a fixed delay raced the
      // machine's load: on a busy machine no request had reached the server yet).
      yield* Effect.promise(() => Promise.race(answers))
      first.child.kill("SIGTERM")
      const statuses = yield* Effect.promise(() => Promise.all(answers))
      assert.strictEqual(yield* Effect.promise(() => first.exited), 0, "a clean exit")
      assert.isFalse(yield* Effect.promise(() => canConnect(`nats://127.0.0.1:${env.NATS_PORT}`)), "its nats-server stopped")
      assert.isTrue(statuses.some((s) => s === 201), `some commands were answered before the stop: ${JSON.stringify(statuses)}`)

      const second = yield* startPlatform(env)
      yield* waitUntilReady(base)
      for (const [i, id] of ids.entries()) {
        // whatever the first answer was, retrying with the same key ends with revision 0: applied once
        const retried = yield* Effect.promise(() => put(base, id))
        assert.strictEqual(retried, 201, `advertiser ${id} (first answer ${statuses[i]}): created once, so answered "created"`)
        const history = yield* Effect.promise(() =>
          fetch(`${base}/v1/entities/advertiser/${id}/history`, { headers: { authorization: `Bearer ${ADMIN}` } }).then((r) => r.json()))
        assert.strictEqual((history as { events: Array<unknown> }).events.length, 1, `advertiser ${id}`)
        if (statuses[i] === 201) assert.strictEqual(retried, 201, `advertiser ${id}: the same answer again`)
      }
      second.child.kill("SIGTERM")
      assert.strictEqual(yield* Effect.promise(() => second.exited), 0)
    }).pipe(Effect.scoped), { timeout: 120_000 })
})
