import { assert, describe, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { Context, Effect, Exit, Layer, Stream } from "effect"
import { Uploads } from "../../../domain/ingest/Uploads.ts"
import { layerDir } from "../../../infra/ingest/uploadsDir.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const open = (dir: string) => Effect.map(Layer.build(Layer.fresh(layerDir({ dir }))), (context) => Context.get(context, Uploads))

/** Every file under `dir`, recursively, relative to it. */
const files = (dir: string): Array<string> =>
  readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1))

const chunks = (n: number, size: number) => Stream.range(1, n).pipe(Stream.map((i) => new Uint8Array(size).fill(i % 251)))

describe("uploads in a directory", () => {
  it.effect("streams a body into a private file, with its size and sha256, and reads it back from any offset", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("uploads")
      const uploads = yield* open(dir)
      const expected = createHash("sha256")
      for (let i = 1; i <= 40; i++) expected.update(new Uint8Array(100_000).fill(i % 251))
      const stored = yield* uploads.put("acme", chunks(40, 100_000))
      assert.strictEqual(stored.bytes, 4_000_000)
      assert.strictEqual(stored.digest, expected.digest("hex"))
      assert.match(stored.uploadId, /^acme\//)
      assert.deepStrictEqual(files(dir), [stored.uploadId])
      assert.strictEqual(statSync(join(dir, stored.uploadId)).mode & 0o777, 0o600)
      const whole = yield* Stream.runCollect(uploads.read(stored.uploadId))
      assert.strictEqual(whole.reduce((n, c) => n + c.byteLength, 0), 4_000_000)
      const tail = Buffer.concat(yield* Stream.runCollect(uploads.read(stored.uploadId, { from: 3_999_990 })))
      assert.deepStrictEqual([...tail], [...readFileSync(join(dir, stored.uploadId)).subarray(3_999_990)])
      yield* uploads.remove(stored.uploadId)
      yield* uploads.remove(stored.uploadId)
      assert.deepStrictEqual(files(dir), [])
    }))

  it.effect("keeps nothing of a body over maxBytes, nor of a body that fails midway", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("uploads")
      const uploads = yield* open(dir)
      const tooLarge = yield* Effect.exit(uploads.put("acme", chunks(20, 100_000), { maxBytes: 1_000_000 }))
      assert.isTrue(Exit.isFailure(tooLarge))
      assert.match(JSON.stringify(tooLarge), /UploadTooLarge/)
      const broken = chunks(5, 100_000).pipe(Stream.concat(Stream.fail("client went away")))
      const failed = yield* Effect.exit(uploads.put("acme", broken))
      assert.isTrue(Exit.isFailure(failed))
      assert.match(JSON.stringify(failed), /client went away/)
      assert.deepStrictEqual(files(dir), [])
      // Exactly the limit is fine.
      const atLimit = yield* uploads.put("acme", chunks(10, 100_000), { maxBytes: 1_000_000 })
      assert.strictEqual(atLimit.bytes, 1_000_000)
    }))

  it.effect("never reaches outside its directory: ids and partners that are not its own are refused", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("uploads")
      const uploads = yield* open(dir)
      assert.isTrue(Exit.isFailure(yield* Effect.exit(uploads.put("../x", chunks(1, 10)))))
      assert.isTrue(Exit.isFailure(yield* Effect.exit(uploads.remove("../../etc/passwd"))))
      assert.isTrue(Exit.isFailure(yield* Effect.exit(uploads.remove(""))))
      assert.isTrue(Exit.isFailure(yield* Effect.exit(Stream.runCollect(uploads.read("acme/../../x")))))
    }))
})
