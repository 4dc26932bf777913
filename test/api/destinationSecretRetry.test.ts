/**
 * A destination write with `secretHeaders` sent again under its Idempotency-Key is a retry: answered
 * as it was the first time, and it writes nothing; the same key with other secrets is refused (422),
 * after a restart too. Found by stop 32's outside attack: a late retry of a PUT wrote its old secrets
 * back over a rotation answered since (history still ending with the rotation), the same key with other
 * secrets was taken as a retry after a restart (its secret-only PATCH had been a no-op to the entity,
 * which remembers no-ops in memory only) and stored them unrecorded, and a retry with the headers in
 * another order or case was refused. Its re-attack: after a restart, a delete or the entity forgetting the
 * command, a retry applied its other fields again over later changes, or stored its secrets unrecorded in
 * the destination created again under the id. The store now gives such a retry the request's answer.
 * On a platform in its own process, SIGKILLed and started again.
 */
import { assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { Context, Effect, Layer, Option, Redacted } from "effect"
import { DestinationSecrets } from "../../domain/delivery/DestinationSecrets.ts"
import { deliverySecretsKey } from "../../infra/delivery/secretsKey.ts"
import { layerSqlite as secretsLayer } from "../../infra/delivery/secretsSqlite.ts"
import { layerTestNatsServer, TestNatsServer } from "../fixtures/nats.ts"
import { call, platformEnv, startPlatformProcess, stopProcess, waitUntilReady } from "../fixtures/platformProcess.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const ADMIN = "stop32-secret-retry-admin-01"

describe("destination secrets sent again under an Idempotency-Key", () => {
  it.live("write nothing as a retry, and are refused with other secrets, after a restart too", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("secret-retry")
      const nats = yield* TestNatsServer
      const env = platformEnv(nats, dataDir, ADMIN, { SHARDS: "4" })
      const started = yield* startPlatformProcess(env, dataDir)
      yield* waitUntilReady(started)
      let base = started.base
      const api = (method: string, body: unknown, key: string) =>
        call(base, method, "/v1/entities/destination/acme-dsp", { key: ADMIN, body, headers: { "idempotency-key": key } })
      const held = Effect.gen(function*() {
        const secrets = Context.get(yield* Layer.build(secretsLayer({ path: join(dataDir, "delivery-secrets.db"), key: yield* deliverySecretsKey(Option.none(), dataDir) })), DestinationSecrets)
        const { headers } = yield* secrets.held("acme-dsp")
        return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, Redacted.value(value)]))
      }).pipe(Effect.scoped)
      assert.strictEqual((yield* call(base, "PUT", "/v1/entities/partner/acme", { key: ADMIN, body: { name: "Acme" } })).status, 201)
      const fields = { partnerId: "acme", url: "http://127.0.0.1:9/members", format: "single", ratePerSecond: 20, segmentIds: ["301"] }

      // created with a credential, then rotated by another request
      const created = yield* api("PUT", { ...fields, secretHeaders: { "X-Z": "s1-old" } }, "k1")
      assert.strictEqual(created.status, 201, created.text)
      const rotated = yield* api("PATCH", { secretHeaders: { "X-Z": "s2-rotated" } }, "k2")
      assert.strictEqual(rotated.status, 200, rotated.text)
      // the creating request late, byte for byte: answered as it was, the rotation kept
      const late = yield* api("PUT", { ...fields, secretHeaders: { "X-Z": "s1-old" } }, "k1")
      assert.deepStrictEqual([late.status, late.body], [created.status, created.body], late.text)
      assert.deepStrictEqual(yield* held, { "x-z": "s2-rotated" })

      // the same headers in another order and case: the same request
      const both = yield* api("PATCH", { secretHeaders: { "X-B": "b1", "X-A": "a1" } }, "k3")
      assert.strictEqual(both.status, 200, both.text)
      const reordered = yield* api("PATCH", { secretHeaders: { "x-a": "a1", "X-B": "b1" } }, "k3")
      assert.deepStrictEqual([reordered.status, reordered.body], [both.status, both.body], reordered.text)

      // a secret-only PATCH, then the platform killed and started again: its key with other secrets is refused
      const only = yield* api("PATCH", { secretHeaders: { "X-Z": "v1-original" } }, "k4")
      assert.strictEqual(only.status, 200, only.text)
      yield* stopProcess(started, "SIGKILL")
      const restarted = yield* startPlatformProcess(env, dataDir)
      yield* waitUntilReady(restarted)
      base = restarted.base
      const reused = yield* api("PATCH", { secretHeaders: { "X-Z": "v2-attacker" } }, "k4")
      assert.strictEqual(reused.status, 422, reused.text)
      assert.strictEqual((reused.body as { code?: string }).code, "idempotency-key-reused")
      assert.deepStrictEqual(yield* held, { "x-a": "a1", "x-b": "b1", "x-z": "v1-original" })
      // and sent again as it was, it is still a retry
      const retried = yield* api("PATCH", { secretHeaders: { "X-Z": "v1-original" } }, "k4")
      assert.deepStrictEqual([retried.status, retried.body], [only.status, only.body], retried.text)

      // another client's change, then the creating request late again after the restart: given its answer,
      // nothing applied over the change (the re-attack: its fields were applied again, answered as a retry)
      const slower = yield* api("PATCH", { ratePerSecond: 3 }, "k5")
      assert.strictEqual(slower.status, 200, slower.text)
      const lateAgain = yield* api("PUT", { ...fields, secretHeaders: { "X-Z": "s1-old" } }, "k1")
      assert.deepStrictEqual([lateAgain.status, lateAgain.body], [created.status, created.body], lateAgain.text)
      const now = yield* call(base, "GET", "/v1/entities/destination/acme-dsp", { key: ADMIN })
      assert.deepStrictEqual([(now.body as { revision?: number }).revision, (now.body as { state?: { ratePerSecond?: number } }).state?.ratePerSecond], [(slower.body as { revision?: number }).revision, 3])
      // its key with the same secrets but other fields is another request
      const otherFields = yield* api("PUT", { ...fields, ratePerSecond: 7, secretHeaders: { "X-Z": "s1-old" } }, "k1")
      assert.strictEqual(otherFields.status, 422, otherFields.text)

      // deleted and created again by another request: a request of the deleted one sent again writes nothing
      // to the new one (the re-attack: its old secret was stored, unrecorded, and sent to the partner)
      assert.strictEqual((yield* call(base, "DELETE", "/v1/entities/destination/acme-dsp", { key: ADMIN })).status, 200)
      const again = yield* api("PUT", fields, "k6")
      assert.strictEqual(again.status, 201, again.text)
      const fromBefore = yield* api("PATCH", { secretHeaders: { "X-Z": "s2-rotated" } }, "k2")
      assert.deepStrictEqual([fromBefore.status, fromBefore.body], [rotated.status, rotated.body], fromBefore.text)
      assert.deepStrictEqual(yield* held, {})
      const recreated = yield* call(base, "GET", "/v1/entities/destination/acme-dsp", { key: ADMIN })
      assert.deepStrictEqual(recreated.body, again.body)

      // a DELETE sent again after the destination was created anew drops no more than it did: the new
      // one's secrets stay (the second re-attack: they were dropped, history still naming them)
      const deleted = yield* call(base, "DELETE", "/v1/entities/destination/acme-dsp", { key: ADMIN, headers: { "idempotency-key": "k8" } })
      assert.strictEqual(deleted.status, 200, deleted.text)
      assert.strictEqual((yield* api("PUT", { ...fields, secretHeaders: { "X-N": "new-2" } }, "k9")).status, 201)
      const deletedAgain = yield* call(base, "DELETE", "/v1/entities/destination/acme-dsp", { key: ADMIN, headers: { "idempotency-key": "k8" } })
      assert.deepStrictEqual([deletedAgain.status, deletedAgain.body], [deleted.status, deleted.body], deletedAgain.text)
      assert.deepStrictEqual(yield* held, { "x-n": "new-2" })
    }).pipe(Effect.scoped, Effect.provide(layerTestNatsServer())), { timeout: 150_000 })
})
