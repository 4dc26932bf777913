import { assert, layer } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { Context, Effect, Layer, Redacted } from "effect"
import { ed25519KeyPair } from "../../infra/ingest/sshPublicKey.ts"
import { PartnerCredentials } from "../../domain/ingest/PartnerCredentials.ts"
import { assertInvalid, assertProblem, createKey, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"
import { tempDir } from "../fixtures/tempDir.ts"

class DataDir extends Context.Service<DataDir, string>()("test/DataDir") {}

const platform = Layer.unwrap(Effect.map(tempDir("credentials-api"), (dir) =>
  Layer.merge(layerTestPlatform({ DATA_DIR: dir }), Layer.succeed(DataDir, dir))))

const password = "a long partner password"
const sshKey = () => ed25519KeyPair({ comment: "ops@acme" })

layer(platform, { excludeTestServices: true, timeout: 120_000 })("partner credentials (admin)", (it) => {
  it.effect("are stored hashed, verify, and the partner's history records only that they changed", () =>
    Effect.gen(function*() {
      const dataDir = yield* DataDir
      assert.strictEqual((yield* request({ method: "PUT", url: "/v1/entities/partner/acme", body: { name: "Acme" } })).statusCode, 201)
      const key = sshKey()
      const res = yield* request({ method: "PUT", url: "/v1/admin/partners/acme/credentials", body: { password, sshPublicKey: key.public } })
      assert.strictEqual(res.statusCode, 200, res.body)
      assert.deepInclude(res.json() as object, { partner: "acme", password: true, sshPublicKeys: 1 })
      const keyBody = key.public.split(" ")[1]!
      assert.notInclude(res.body, password)
      assert.notInclude(res.body, keyBody)
      // Only a salted hash is on disk.
      const onDisk = readdirSync(dataDir).filter((f) => f.startsWith("credentials.db")).map((f) => readFileSync(join(dataDir, f), "latin1")).join("")
      assert.include(onDisk, "scrypt$")
      assert.notInclude(onDisk, password)
      const credentials = yield* PartnerCredentials
      assert.isTrue(yield* credentials.verifyPassword("acme", Redacted.make(password)))
      assert.isFalse(yield* credentials.verifyPassword("acme", Redacted.make(`${password}.`)))
      assert.deepStrictEqual(yield* credentials.sshPublicKeys("acme"), [key.public.trim()])
      // The history: created, then the change, with nothing secret in it.
      const history = yield* request({ method: "GET", url: "/v1/entities/partner/acme/history" })
      assert.strictEqual(history.statusCode, 200, history.body)
      const events = (history.json() as { events: Array<{ type: string; data: Record<string, unknown> }> }).events
      assert.deepStrictEqual(events.map((e) => e.type), ["EntityCreated", "CredentialsChanged"])
      assert.deepInclude(events[1]!.data, { password: true, sshPublicKeys: 1 })
      assert.notInclude(history.body, password)
      assert.notInclude(history.body, keyBody)
      const summary = yield* request({ method: "GET", url: "/v1/admin/partners/acme/credentials" })
      assert.deepInclude(summary.json() as object, { partner: "acme", password: true, sshPublicKeys: 1 })
      // Removing the keys is a change too; the password stays.
      const removed = yield* request({ method: "PUT", url: "/v1/admin/partners/acme/credentials", body: { sshPublicKey: "" } })
      assert.deepInclude(removed.json() as object, { password: true, sshPublicKeys: 0 })
      const entity = yield* request({ method: "GET", url: "/v1/entities/partner/acme" })
      assert.deepInclude((entity.json() as { state: { credentials: object } }).state.credentials, { password: true, sshPublicKeys: 0 })
    }))

  it.effect("a key that is not an SSH public key is 422 naming it, a short password 400, and nothing changes", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* request({ method: "PUT", url: "/v1/entities/partner/globex", body: { name: "Globex" } })).statusCode, 201)
      const good = sshKey()
      for (const bad of ["ssh-ed25519 AAAAC3Nza", good.private]) {
        const res = yield* request({ method: "PUT", url: "/v1/admin/partners/globex/credentials", body: { password, sshPublicKey: `${good.public}\n${bad}` } })
        const problem = assertProblem(res, 422, "invalid-credentials")
        assert.isTrue((problem.errors ?? []).some((e) => e.in === "body" && e.pointer === "/sshPublicKey/1"), res.body)
      }
      assertInvalid(yield* request({ method: "PUT", url: "/v1/admin/partners/globex/credentials", body: { password: "too short" } }), "body", "/password")
      assertInvalid(yield* request({ method: "PUT", url: "/v1/admin/partners/globex/credentials", body: {} }), "body", "/")
      const summary = yield* request({ method: "GET", url: "/v1/admin/partners/globex/credentials" })
      assert.deepStrictEqual(summary.json(), { partner: "globex", password: false, sshPublicKeys: 0 })
      const history = yield* request({ method: "GET", url: "/v1/entities/partner/globex/history" })
      assert.deepStrictEqual((history.json() as { events: Array<{ type: string }> }).events.map((e) => e.type), ["EntityCreated"])
    }))

  it.effect("only admin may set or read them; an unknown partner is 404", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* request({ method: "PUT", url: "/v1/entities/partner/initech", body: { name: "Initech" } })).statusCode, 201)
      const partnerKey = yield* createKey("partner:initech")
      const service = yield* createKey("service")
      for (const key of [partnerKey.secret, service.secret]) {
        assertProblem(yield* request({ method: "PUT", url: "/v1/admin/partners/initech/credentials", key, body: { password } }), 403, "forbidden")
        assertProblem(yield* request({ method: "GET", url: "/v1/admin/partners/initech/credentials", key }), 403, "forbidden")
      }
      assertProblem(yield* request({ method: "PUT", url: "/v1/admin/partners/nobody/credentials", body: { password } }), 404, "not-found")
      assertProblem(yield* request({ method: "GET", url: "/v1/admin/partners/nobody/credentials" }), 404, "not-found")
      assert.isFalse((yield* (yield* PartnerCredentials).summary("initech")).password)
    }))

  it.effect("end with their partner: deleted, its login and keys are gone, and a partner created again under its id has none", () =>
    // Before (stop 31's outside attack), both outlived the delete: the old password logged in to the new
    // partner of the same id, and the old partner:<id> key sent it records.
    Effect.gen(function*() {
      assert.strictEqual((yield* request({ method: "PUT", url: "/v1/entities/partner/hooli", body: { name: "Hooli" } })).statusCode, 201)
      assert.strictEqual((yield* request({ method: "PUT", url: "/v1/admin/partners/hooli/credentials", body: { password, sshPublicKey: sshKey().public } })).statusCode, 200)
      const own = yield* createKey("partner:hooli")
      const other = yield* createKey("partner:initech", "another partner's key")
      const records = (key: string) => request({ method: "POST", url: "/v1/ingest/hooli/records", key, contentType: "application/x-ndjson", body: "{}" })
      assert.notStrictEqual((yield* records(own.secret)).statusCode, 401, "the key works while its partner lives")
      assert.strictEqual((yield* request({ method: "DELETE", url: "/v1/entities/partner/hooli" })).statusCode, 200)
      assert.strictEqual((yield* request({ method: "PUT", url: "/v1/entities/partner/hooli", body: { name: "Hooli, another company" } })).statusCode, 201)
      const credentials = yield* PartnerCredentials
      assert.deepInclude(yield* credentials.summary("hooli"), { password: false, sshPublicKeys: 0 })
      assert.isFalse(yield* credentials.verifyPassword("hooli", Redacted.make(password)))
      assertProblem(yield* records(own.secret), 401, "unauthorized")
      const ids = ((yield* request({ method: "GET", url: "/v1/admin/keys" })).json() as { keys: Array<{ id: string }> }).keys.map((k) => k.id)
      assert.notInclude(ids, own.id)
      assert.include(ids, other.id, "another partner's key is kept")
    }))

  it.effect("set while their partner is deleted, they go with it", () =>
    // Before (stop 31's re-attack), a credentials PUT whose partner was deleted while it hashed the
    // password stored them after the delete's drop, answered 404, and a partner created again took them.
    Effect.gen(function*() {
      for (let round = 0; round < 5; round++) {
        const id = `racer-${round}`
        assert.strictEqual((yield* request({ method: "PUT", url: `/v1/entities/partner/${id}`, body: { name: "Racer" } })).statusCode, 201)
        const [set, deleted] = yield* Effect.all([
          request({ method: "PUT", url: `/v1/admin/partners/${id}/credentials`, body: { password } }),
          Effect.andThen(Effect.sleep(`${round * 5} millis`), request({ method: "DELETE", url: `/v1/entities/partner/${id}` }))
        ], { concurrency: "unbounded" })
        assert.strictEqual(deleted.statusCode, 200, deleted.body)
        assert.oneOf(set.statusCode, [200, 404], set.body)
        assert.strictEqual((yield* request({ method: "PUT", url: `/v1/entities/partner/${id}`, body: { name: "Another company" } })).statusCode, 201)
        assert.deepInclude(yield* (yield* PartnerCredentials).summary(id), { password: false }, `round ${round}: the PUT answered ${set.statusCode}`)
      }
    }))
})
