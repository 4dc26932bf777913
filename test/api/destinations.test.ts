/**
 * Destinations through the API (issue 9 item 1), on a platform in its own process: fields checked
 * and named, the partner must exist, and secret headers — write-only — stored encrypted, shown by
 * name only, and absent from every answer, from history, from the data files and from the log.
 */
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { DestinationSecrets } from "../../domain/delivery/DestinationSecrets.ts"
import { layerSqlite } from "../../infra/delivery/secretsSqlite.ts"
import { eventually } from "../fixtures/http.ts"
import { layerTestNatsServer, TestNatsServer } from "../fixtures/nats.ts"
import { call, type HttpAnswer, platformEnv, startPlatformProcess, stopProcess, waitUntilReady } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "dest-admin-key-0123456789"
const KEY = Buffer.alloc(32, 3)
const OTHER_KEY = Buffer.alloc(32, 4)
const SECRET_1 = "Bearer tok-7f3a9c1e5b2d4068"
const SECRET_2 = "apikey-2b8e6d0f4a1c3957"
const SECRET_3 = "extra-9d1f3b5a7c2e4086"
const secrets = [SECRET_1, SECRET_2, SECRET_3, "tok-7f3a9c1e5b2d4068"]

const destination = { partnerId: "acme", url: "https://api.acme.test/members", format: "ndjson", batchSize: 500, ratePerSecond: 200, segmentIds: ["101", "102"], headers: { "X-Tenant": "42" } }

/** Every file under `dir` that contains one of the secrets (as bytes). */
const filesHolding = (dir: string): Array<string> =>
  readdirSync(dir, { recursive: true, encoding: "utf8" }).flatMap((name) => {
    const path = join(dir, name)
    if (!statSync(path).isFile()) return []
    const bytes = readFileSync(path).toString("latin1")
    return secrets.some((s) => bytes.includes(s)) ? [path] : []
  })

interface JsonSchema {
  readonly $ref?: string
  readonly properties?: Record<string, { readonly writeOnly?: boolean }>
}
interface OpenApiDoc {
  readonly paths: Record<string, { readonly put: { readonly requestBody: { readonly content: Record<string, { readonly schema: JsonSchema }> } } }>
  readonly components: { readonly schemas: Record<string, JsonSchema> }
}

const pointers = (answer: HttpAnswer) => ((answer.body as { errors?: Array<{ pointer: string }> }).errors ?? []).map((e) => e.pointer)

describe("destinations", () => {
  it.live("check their fields and partner, keep secret headers encrypted and out of every answer, history, file and log; another key is refused", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("destinations")
      const nats = yield* TestNatsServer
      const env = platformEnv(nats, dataDir, ADMIN, { DELIVERY_SECRETS_KEY: KEY.toString("base64"), LOG_LEVEL: "Debug", SHARDS: "4" })
      const platform = yield* startPlatformProcess(env, dataDir)
      yield* waitUntilReady(platform)
      const answers: Array<HttpAnswer> = []
      const api = (method: string, path: string, body?: unknown) =>
        Effect.tap(call(platform.base, method, path, { key: ADMIN, ...(body === undefined ? {} : { body }) }), (a) => Effect.sync(() => void answers.push(a)))
      assert.strictEqual((yield* api("PUT", "/v1/entities/partner/acme", { name: "Acme" })).status, 201)
      // OpenAPI documents secretHeaders in the PUT body, as write-only
      const doc = yield* Effect.promise(() => fetch(`${platform.base}/docs/json`).then((r) => r.json() as Promise<OpenApiDoc>))
      const putBody = doc.paths["/v1/entities/destination/{id}"]!.put.requestBody.content["application/json"].schema
      const resolved = putBody.$ref === undefined ? putBody : doc.components.schemas[putBody.$ref.split("/").pop()!]!
      assert.strictEqual(resolved.properties?.["secretHeaders"]?.writeOnly, true, JSON.stringify(resolved))

      // the partner must exist: 400 naming partnerId, and nothing stored
      const unknown = yield* api("PUT", "/v1/entities/destination/acme-dsp", { ...destination, partnerId: "nobody", secretHeaders: { Authorization: SECRET_1 } })
      assert.strictEqual(unknown.status, 400, unknown.text)
      assert.deepStrictEqual(pointers(unknown), ["/partnerId"])
      // invalid fields, each named
      const bad = yield* api("PUT", "/v1/entities/destination/acme-dsp", { ...destination, url: "ftp://x", ratePerSecond: 0, format: "csv" })
      assert.strictEqual(bad.status, 400)
      assert.includeMembers(pointers(bad), ["/url", "/ratePerSecond", "/format"])
      const plainSecret = yield* api("PUT", "/v1/entities/destination/acme-dsp", { ...destination, headers: { Authorization: SECRET_1 } })
      assert.strictEqual(plainSecret.status, 400)
      assert.deepStrictEqual(pointers(plainSecret), ["/headers/Authorization"])
      // a name that is no header token is refused by name (it was dropped without a word)
      const notToken = yield* api("PUT", "/v1/entities/destination/acme-dsp", { ...destination, headers: { "X Tenant": "1" }, secretHeaders: { "X Key": "s" } })
      assert.strictEqual(notToken.status, 400)
      assert.deepStrictEqual(pointers(notToken).sort(), ["/headers/X Tenant", "/secretHeaders/X Key"])
      const reserved = yield* api("PUT", "/v1/entities/destination/acme-dsp", { ...destination, secretHeaders: { "Idempotency-Key": "x", "X-Tenant": "7" } })
      assert.strictEqual(reserved.status, 400)
      assert.includeMembers(pointers(reserved), ["/secretHeaders/Idempotency-Key", "/secretHeaders/X-Tenant"])

      const created = yield* api("PUT", "/v1/entities/destination/acme-dsp", { ...destination, secretHeaders: { Authorization: SECRET_1, "X-Api-Key": SECRET_2 } })
      assert.strictEqual(created.status, 201, created.text)
      assert.deepStrictEqual((created.body as { state: unknown }).state, { ...destination, secretHeaders: ["authorization", "x-api-key"] })

      // PATCH: a merge patch of secretHeaders (null removes one) beside other fields
      const patched = yield* api("PATCH", "/v1/entities/destination/acme-dsp", { ratePerSecond: 300, secretHeaders: { "x-api-key": null, "X-Extra": SECRET_3 } })
      assert.strictEqual(patched.status, 200, patched.text)
      assert.deepStrictEqual((patched.body as { state: unknown }).state, { ...destination, ratePerSecond: 300, secretHeaders: ["authorization", "x-extra"] })
      const badName = yield* api("PATCH", "/v1/entities/destination/acme-dsp", { secretHeaders: { "bad name": "v" } })
      assert.strictEqual(badName.status, 400)
      assert.deepStrictEqual(pointers(badName), ["/secretHeaders/bad name"])
      const hopByHop = yield* api("PATCH", "/v1/entities/destination/acme-dsp", { secretHeaders: { Connection: "close" } })
      assert.strictEqual(hopByHop.status, 400)
      assert.deepStrictEqual(pointers(hopByHop), ["/secretHeaders/Connection"])
      const missing = yield* api("PATCH", "/v1/entities/destination/nowhere", { secretHeaders: { Authorization: SECRET_1 } })
      assert.strictEqual(missing.status, 404)

      // every read: now, asOf, list (once the read model has it), history
      yield* api("GET", "/v1/entities/destination/acme-dsp")
      yield* api("GET", `/v1/entities/destination/acme-dsp?asOf=${new Date().toISOString()}`)
      yield* eventually(api("GET", "/v1/entities/destination"), (a) => JSON.stringify(a.body).includes("x-extra"), "30 seconds")
      const history = yield* api("GET", "/v1/entities/destination/acme-dsp/history")
      const events = (history.body as { events: Array<{ type: string; data: unknown }> }).events
      assert.deepStrictEqual(events.map((e) => e.type), ["EntityCreated", "SecretsChanged", "EntityUpdated", "SecretsChanged"])
      assert.deepStrictEqual((events[3]!.data as { headerNames: unknown }).headerNames, ["authorization", "x-extra"])
      const leaked = answers.filter((a) => secrets.some((s) => a.text.includes(s)))
      assert.deepStrictEqual(leaked.map((a) => a.text), [])

      // stored encrypted, and they decrypt with the key: what the deliverer will send
      const stored = yield* Effect.gen(function*() {
        return (yield* (yield* DestinationSecrets).held("acme-dsp")).headers
      }).pipe(Effect.provide(Layer.fresh(layerSqlite({ path: join(dataDir, "delivery-secrets.db"), key: Redacted.make(new Uint8Array(KEY)) }))))
      assert.deepStrictEqual(Object.fromEntries(Object.entries(stored).map(([n, v]) => [n, Redacted.value(v)])), { authorization: SECRET_1, "x-extra": SECRET_3 })

      yield* stopProcess(platform, "SIGTERM")
      // no data file (event store, read model, JetStream's HISTORY and SNAPSHOTS) nor log holds a value
      assert.deepStrictEqual(filesHolding(dataDir), [])
      assert.deepStrictEqual(filesHolding(nats.storeDir), [])
      const firstLog = readFileSync(platform.log, "utf8")
      assert.isAbove(firstLog.split("\n").length, 5, "the log was read")
      assert.isFalse(secrets.some((s) => firstLog.includes(s)))

      // started with another key, the platform refuses to start rather than send garbage
      const wrong = yield* startPlatformProcess({ ...env, DELIVERY_SECRETS_KEY: OTHER_KEY.toString("base64") }, dataDir)
      const code = yield* Effect.promise(() => wrong.exited)
      assert.notStrictEqual(code, 0)
      const log = readFileSync(wrong.log, "utf8")
      assert.include(log, "DELIVERY_SECRETS_KEY")
      assert.isFalse(secrets.some((s) => log.includes(s)))
    }).pipe(Effect.provide(layerTestNatsServer()), Effect.scoped), { timeout: 90_000 })
})
