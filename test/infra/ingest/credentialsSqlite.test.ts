import { assert, describe, it } from "@effect/vitest"
import { generateKeyPairSync } from "node:crypto"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { Context, Effect, Exit, Layer, Redacted } from "effect"
import { ed25519KeyPair } from "../../../infra/ingest/sshPublicKey.ts"
import { PartnerCredentials } from "../../../domain/ingest/PartnerCredentials.ts"
import { layerSqlite } from "../../../infra/ingest/credentialsSqlite.ts"
import { parseSshPublicKey } from "../../../infra/ingest/sshPublicKey.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const open = (path: string) => Effect.map(Layer.build(Layer.fresh(layerSqlite({ path }))), (context) => Context.get(context, PartnerCredentials))

/** A fresh ed25519 key pair: the public key as an OpenSSH line, the private one as OpenSSH PEM. */
export const sshKeyPair = (comment = "partner@test") => {
  const pair = ed25519KeyPair({ comment })
  return { publicKey: pair.public.trim(), privateKey: pair.private }
}

describe("partner credentials", () => {
  it.effect("keeps a salted hash of the password only, verifies it, and counts the keys", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("credentials")
      const path = join(dir, "credentials.db")
      const credentials = yield* open(path)
      const password = "correct horse battery staple"
      assert.deepStrictEqual(yield* credentials.summary("acme"), { partner: "acme", password: false, sshPublicKeys: 0 })
      assert.isFalse(yield* credentials.verifyPassword("acme", Redacted.make(password)))
      const summary = yield* credentials.set("acme", { password: Redacted.make(password) })
      assert.deepInclude(summary, { partner: "acme", password: true, sshPublicKeys: 0 })
      // The same password of another partner has another hash (its own salt).
      yield* credentials.set("globex", { password: Redacted.make(password) })
      const onDisk = readdirSync(dir).map((file) => readFileSync(join(dir, file), "latin1")).join("")
      assert.isFalse(onDisk.includes(password))
      const hashes = [...onDisk.matchAll(/scrypt\$[^\s']+/g)].map((m) => m[0].split("$").slice(4).join("$").slice(0, 60))
      assert.isAtLeast(new Set(hashes).size, 2)
      for (const file of readdirSync(dir)) assert.strictEqual(statSync(join(dir, file)).mode & 0o777, 0o600, file)
      assert.isTrue(yield* credentials.verifyPassword("acme", Redacted.make(password)))
      assert.isFalse(yield* credentials.verifyPassword("acme", Redacted.make(`${password}!`)))
      assert.isFalse(yield* credentials.verifyPassword("initech", Redacted.make(password)))
      // Another process on the same file sees it.
      const other = yield* open(path)
      assert.isTrue(yield* other.verifyPassword("acme", Redacted.make(password)))
    }))

  it.effect("stores valid SSH public keys in OpenSSH form, replaces them, and refuses anything else", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("credentials")
      const credentials = yield* open(join(dir, "credentials.db"))
      const a = sshKeyPair("a@acme")
      const b = sshKeyPair()
      const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 })
      const summary = yield* credentials.set("acme", { sshPublicKeys: [a.publicKey, b.publicKey] })
      assert.deepInclude(summary, { password: false, sshPublicKeys: 2 })
      assert.deepStrictEqual(yield* credentials.sshPublicKeys("acme"), [a.publicKey, b.publicKey])
      // A password change leaves the keys; a key change leaves the password.
      yield* credentials.set("acme", { password: Redacted.make("twelve chars!") })
      assert.strictEqual((yield* credentials.set("acme", { sshPublicKeys: [b.publicKey] })).sshPublicKeys, 1)
      assert.isTrue((yield* credentials.summary("acme")).password)
      for (const bad of ["ssh-ed25519 AAAAnotakey", "hello", a.privateKey, rsa.privateKey.export({ type: "pkcs1", format: "pem" }).toString()]) {
        const exit = yield* Effect.exit(credentials.set("acme", { sshPublicKeys: [bad] }))
        assert.isTrue(Exit.isFailure(exit), bad)
      }
      assert.deepStrictEqual(yield* credentials.sshPublicKeys("acme"), [b.publicKey])
      assert.match(String(parseSshPublicKey(a.privateKey)), /private key/)
      yield* credentials.set("acme", { sshPublicKeys: [] })
      assert.deepStrictEqual(yield* credentials.sshPublicKeys("acme"), [])
    }))
})
