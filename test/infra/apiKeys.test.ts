import { assert, describe, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { Context, Effect, Layer, Option } from "effect"
import { TestClock } from "effect/testing"
import { ApiKeys } from "../../domain/ApiKeys.ts"
import { layerSqlite } from "../../infra/apiKeys/sqlite.ts"
import { tempDir } from "../fixtures/tempDir.ts"

/** The key store of one node on the shared file, open for the rest of the test. */
const node = (path: string) => Effect.map(Layer.build(Layer.fresh(layerSqlite({ path }))), (context) => Context.get(context, ApiKeys))

describe("API key store", () => {
  it.effect("keeps only a hash, authenticates by secret, and forgets revoked keys", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("keys")
      const keys = yield* node(join(dir, "keys.db"))
      const { key, secret } = yield* keys.create({ name: "svc", role: "service" })
      const onDisk = readdirSync(dir).map((file) => readFileSync(join(dir, file), "latin1")).join("")
      assert.isFalse(onDisk.includes(secret))
      assert.isTrue(onDisk.includes(createHash("sha256").update(secret).digest("hex")))
      assert.deepStrictEqual(Option.map(yield* keys.authenticate(secret), (k) => k.role), Option.some("service"))
      assert.isTrue(Option.isNone(yield* keys.authenticate(`${secret}x`)))
      assert.deepStrictEqual((yield* keys.list).map((k) => k.id), [key.id])
      assert.isTrue(yield* keys.revoke(key.id))
      assert.isFalse(yield* keys.revoke(key.id))
      assert.isTrue(Option.isNone(yield* keys.authenticate(secret)))
    }))

  it.effect("a key revoked through another node stops working there within seconds", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir("keys"), "keys.db")
      const [a, b] = [yield* node(path), yield* node(path)]
      const { key, secret } = yield* a.create({ name: "svc", role: "service" })
      assert.isTrue(Option.isSome(yield* b.authenticate(secret)))
      yield* a.revoke(key.id)
      yield* TestClock.adjust("6 seconds")
      assert.isTrue(Option.isNone(yield* b.authenticate(secret)))
    }))

  it.effect("the bootstrap key disabled through one node is disabled on every node on the file at once, and after a reopen", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir("keys"), "keys.db")
      const [a, b] = [yield* node(path), yield* node(path)]
      assert.strictEqual((yield* Effect.flip(a.bootstrap.disable))._tag, "LastAdminKey")
      yield* b.create({ name: "operator", role: "admin" })
      assert.isTrue(Option.isNone(yield* b.bootstrap.disabledAt), "b has read it enabled")
      const at = yield* a.bootstrap.disable
      assert.deepStrictEqual(yield* b.bootstrap.disabledAt, Option.some(at))
      assert.deepStrictEqual(yield* (yield* node(path)).bootstrap.disabledAt, Option.some(at))
    }))

  it.effect("while the bootstrap key is disabled, the last live admin key cannot be revoked, from any node", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir("keys"), "keys.db")
      const [a, b] = [yield* node(path), yield* node(path)]
      const first = yield* a.create({ name: "first", role: "admin" })
      const second = yield* a.create({ name: "second", role: "admin" })
      yield* a.bootstrap.disable
      assert.isTrue(yield* b.revoke(first.key.id))
      assert.strictEqual((yield* Effect.flip(a.revoke(second.key.id)))._tag, "LastAdminKey")
      assert.isTrue(Option.isSome(yield* b.authenticate(second.secret)))
    }))
})
