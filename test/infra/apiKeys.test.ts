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
})
