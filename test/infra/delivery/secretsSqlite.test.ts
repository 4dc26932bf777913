import { readFileSync, statSync } from "node:fs"
import { DatabaseSync } from "node:sqlite"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Option, Redacted } from "effect"
import { DestinationSecrets } from "../../../domain/delivery/DestinationSecrets.ts"
import { deliverySecretsKey, keyFileName } from "../../../infra/delivery/secretsKey.ts"
import { layerSqlite } from "../../../infra/delivery/secretsSqlite.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const secret = "Bearer sk_live_0123456789abcdef"
const keyA = Redacted.make(new Uint8Array(32).fill(7))
const keyB = Redacted.make(new Uint8Array(32).fill(9))

const withStore = <A, E>(path: string, key: Redacted.Redacted<Uint8Array>, f: (secrets: DestinationSecrets["Service"]) => Effect.Effect<A, E>) =>
  Effect.gen(function*() { return yield* f(yield* DestinationSecrets) }).pipe(Effect.provide(Layer.fresh(layerSqlite({ path, key }))))

const values = (headers: Readonly<Record<string, Redacted.Redacted<string>>>) =>
  Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, Redacted.value(value)]))

describe("destination secrets in SQLite", () => {
  it.effect("keeps values encrypted: the raw file holds no value, and the key decrypts them", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir("secrets"), "delivery-secrets.db")
      const { names } = yield* withStore(path, keyA, (s) => s.put("acme-dsp", { Authorization: Redacted.make(secret), "x-api-key": Redacted.make("k-42-secret-value") }, "https://partner.example"))
      assert.deepStrictEqual(names, ["authorization", "x-api-key"])
      // the file, its WAL and the rows hold no value in clear
      const raw = ["", "-wal"].map((suffix) => { try { return readFileSync(path + suffix).toString("latin1") } catch { return "" } }).join("")
      assert.notInclude(raw, "sk_live_0123456789abcdef")
      assert.notInclude(raw, "k-42-secret-value")
      assert.strictEqual(statSync(path).mode & 0o777, 0o600)
      const got = yield* withStore(path, keyA, (s) => s.held("acme-dsp").pipe(Effect.map((held) => held.headers)))
      assert.deepStrictEqual(values(got), { authorization: secret, "x-api-key": "k-42-secret-value" })
      assert.strictEqual(String(got["authorization"]), "<redacted>")
    }))

  it.effect("answers a read for an origin only the secrets given for it (and those stored before origins); a patch for another origin drops theirs, never relabels them", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir("secrets"), "delivery-secrets.db")
      yield* withStore(path, keyA, (s) => Effect.gen(function*() {
        yield* s.put("d", { a: Redacted.make("1") }, "https://partner.example")
        assert.deepStrictEqual(values(yield* s.get("d", "https://partner.example")), { a: "1" })
        assert.deepStrictEqual(values(yield* s.get("d", "https://thief.example")), {})
        assert.deepStrictEqual(values((yield* s.held("d")).headers), { a: "1" })
        assert.strictEqual((yield* s.held("d")).origin, "https://partner.example")
        yield* s.patch("d", { b: Redacted.make("2") }, "https://partner.example")
        assert.deepStrictEqual(values(yield* s.get("d", "https://partner.example")), { a: "1", b: "2" })
        // a patch for another origin (or none given: {}) drops what was given for the first, and moves nothing
        // (stop 28's re-attack: a patch that relabelled every row sent a partner's secret to the attacker)
        assert.deepStrictEqual((yield* s.patch("d", {}, "https://thief.example")).names, [])
        assert.deepStrictEqual(values(yield* s.get("d", "https://thief.example")), {})
        yield* s.put("d", { a: Redacted.make("1"), b: Redacted.make("2") }, "https://partner.example")
      }))
      // a row stored before origins (stop 28) has none: read for any origin, until it is written again
      const db = new DatabaseSync(path)
      db.prepare("UPDATE destination_secrets SET origin = NULL").run()
      db.close()
      yield* withStore(path, keyA, (s) => Effect.gen(function*() {
        assert.deepStrictEqual(values(yield* s.get("d", "https://anywhere.example")), { a: "1", b: "2" })
        assert.deepStrictEqual(values((yield* s.held("d")).headers), { a: "1", b: "2" })
        assert.strictEqual((yield* s.held("d")).origin, undefined)
      }))
    }))

  it.effect("patches (null removes a header), replaces on put, removes", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir("secrets"), "delivery-secrets.db")
      yield* withStore(path, keyA, (s) => Effect.gen(function*() {
        yield* s.put("d", { a: Redacted.make("1"), b: Redacted.make("2") }, "https://partner.example")
        assert.deepStrictEqual((yield* s.patch("d", { b: null, c: Redacted.make("3") }, "https://partner.example")).names, ["a", "c"])
        assert.deepStrictEqual(values((yield* s.held("d")).headers), { a: "1", c: "3" })
        assert.deepStrictEqual((yield* s.put("d", { z: Redacted.make("9") }, "https://partner.example")).names, ["z"])
        yield* s.remove("d")
        assert.deepStrictEqual(yield* s.names("d"), [])
        assert.deepStrictEqual(values((yield* s.held("other")).headers), {})
      }))
    }))

  it.effect("removes only what was written up to a point of its write sequence, and adds the sequence to a store made before it", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir("secrets"), "delivery-secrets.db")
      // a store as an earlier version made it: rows without a write stamp
      const old = new DatabaseSync(path)
      old.exec(`CREATE TABLE destination_secrets (destination TEXT NOT NULL, name TEXT NOT NULL, iv BLOB NOT NULL, tag BLOB NOT NULL,
        ciphertext BLOB NOT NULL, key_id TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (destination, name))`)
      old.close()
      yield* withStore(path, keyA, (s) => Effect.gen(function*() {
        yield* s.put("d", { a: Redacted.make("1") }, "https://partner.example")
        const before = yield* s.sequence
        // written after the point: a destination created again while its predecessor's delete drops
        yield* s.put("d", { b: Redacted.make("2") }, "https://partner.example")
        assert.isAbove(yield* s.sequence, before)
        yield* s.remove("d", before)
        assert.deepStrictEqual(values((yield* s.held("d")).headers), { b: "2" })
        yield* s.remove("d", yield* s.sequence)
        assert.deepStrictEqual(yield* s.names("d"), [])
      }))
    }))

  it.effect("puts back what a refused request found only while its own write is the destination's last (a later rotation stays)", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir("secrets-put-back"), "delivery-secrets.db")
      const origin = "https://partner.example"
      yield* withStore(path, keyA, (s) => Effect.gen(function*() {
        yield* s.put("d", { "x-api-key": Redacted.make("init") }, origin)
        const mine = yield* s.put("d", { "x-api-key": Redacted.make("a-r") }, origin)
        // another request rotates it after this one's write, and is accepted
        yield* s.patch("d", { "x-api-key": Redacted.make("b-r") }, origin)
        yield* s.putBack("d", mine)
        assert.deepStrictEqual(values((yield* s.held("d")).headers), { "x-api-key": "b-r" }, "the later rotation stays")
        // a removal after it counts as a write too
        const again = yield* s.put("d", { "x-api-key": Redacted.make("c-r") }, origin)
        yield* s.patch("d", { "x-api-key": null }, origin)
        yield* s.putBack("d", again)
        assert.deepStrictEqual(yield* s.names("d"), [])
        // its own write the last: put back
        const last = yield* s.put("d", { "x-api-key": Redacted.make("d-r") }, origin)
        yield* s.putBack("d", last)
        assert.deepStrictEqual(values((yield* s.held("d")).headers), {}, "what it replaced: none, removed just before")
        // what a write replaced is read in its own transaction: a write between a snapshot and it is not undone
        yield* s.put("d", { "x-api-key": Redacted.make("e-r") }, origin)
        const own = yield* s.patch("d", { "x-other": Redacted.make("o") }, origin)
        yield* s.putBack("d", own)
        assert.deepStrictEqual(values((yield* s.held("d")).headers), { "x-api-key": "e-r" })
        // one key, other secrets: other digests; the same ones, the same
        assert.notStrictEqual(s.digest({ a: "1" }), s.digest({ a: "2" }))
        assert.strictEqual(s.digest({ a: "1" }), s.digest({ a: "1" }))
      }))
    }))

  it.effect("remembers the request each write came from and its answer: sent again it writes nothing, another request under its id is refused, after a reopening and a delete too", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir("secrets-requests"), "delivery-secrets.db")
      const origin = "https://partner.example"
      const k1 = { id: "request-1", digest: "digest-old" }
      const first = yield* withStore(path, keyA, (s) => Effect.gen(function*() {
        const first = yield* s.put("d", { "x-z": Redacted.make("s1-old") }, origin, k1)
        assert.isFalse(first.replayed)
        // another request rotates it
        yield* s.patch("d", { "x-z": Redacted.make("s2-rotated") }, origin, { id: "request-2", digest: "digest-new" })
        return first
      }))
      yield* withStore(path, keyA, (s) => Effect.gen(function*() {
        // the first request late, after a restart: answered as its write was, the rotation kept
        const again = yield* s.put("d", { "x-z": Redacted.make("s1-old") }, origin, k1)
        assert.deepStrictEqual([again.replayed, again.names, again.at, again.written], [true, first.names, first.at, first.written])
        assert.deepStrictEqual(values((yield* s.held("d")).headers), { "x-z": "s2-rotated" })
        // its undo (the entity refused the replayed command) changes nothing either
        yield* s.putBack("d", again)
        assert.deepStrictEqual(values((yield* s.held("d")).headers), { "x-z": "s2-rotated" })
        // the same request id with other secrets: refused, nothing written
        const reused = yield* Effect.exit(s.patch("d", { "x-z": Redacted.make("attacker") }, origin, { id: "request-1", digest: "digest-attacker" }))
        assert.isTrue(Exit.hasFails(reused) && Exit.findErrorOption(reused).pipe(Option.exists((e) => e._tag === "CommandIdReused")), String(reused))
        assert.deepStrictEqual(values((yield* s.held("d")).headers), { "x-z": "s2-rotated" })
        // a write its request's undo put back is forgotten: sent again, it writes
        const refused = yield* s.patch("d", { "x-y": Redacted.make("y1") }, origin, { id: "request-3", digest: "digest-y" })
        yield* s.putBack("d", refused)
        assert.isFalse((yield* s.patch("d", { "x-y": Redacted.make("y1") }, origin, { id: "request-3", digest: "digest-y" })).replayed)
        // once answered, the request is given its answer again; a delete's drop keeps the requests, so a request
        // sent again after it writes nothing to the destination created again under the id
        yield* s.answered("d", "request-1", `{"status":201}`)
        yield* s.remove("d", yield* s.sequence)
        const afterDelete = yield* s.put("d", { "x-z": Redacted.make("s1-old") }, origin, k1)
        assert.deepStrictEqual([afterDelete.replayed, afterDelete.answer], [true, `{"status":201}`])
        assert.deepStrictEqual(yield* s.names("d"), [])
        // a digest reads names as stored (lower-cased) and in no particular order
        assert.strictEqual(s.digest({ "X-B": "1", "X-A": "2" }), s.digest({ "x-a": "2", "x-b": "1" }))
        assert.notStrictEqual(s.digest({ "x-a": "1", "x-b": "2" }), s.digest({ "x-a": "2", "x-b": "1" }))
        assert.notStrictEqual(s.digest(null), s.digest({}))
      }))
    }))

  it.effect("refuses to open with another key, and a tampered value is a typed error, never garbage", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir("secrets"), "delivery-secrets.db")
      yield* withStore(path, keyA, (s) => s.put("acme-dsp", { authorization: Redacted.make(secret) }, "https://partner.example"))
      const other = yield* Effect.exit(withStore(path, keyB, (s) => s.held("acme-dsp").pipe(Effect.map((held) => held.headers))))
      assert.isTrue(Exit.isFailure(other))
      assert.include(String(Exit.isFailure(other) ? other.cause : ""), "another key")
      // a value moved to another row (or altered) does not authenticate
      const db = new DatabaseSync(path)
      db.prepare(`UPDATE destination_secrets SET destination = 'elsewhere'`).run()
      db.close()
      const moved = yield* Effect.flip(withStore(path, keyA, (s) => s.held("elsewhere")))
      assert.strictEqual(moved._tag, "SecretsUndecryptable")
    }))

  it.effect("generates a key once into DATA_DIR when none is configured, and refuses a malformed one", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("secrets")
      const first = yield* deliverySecretsKey(Option.none(), dir)
      const second = yield* deliverySecretsKey(Option.none(), dir)
      assert.deepStrictEqual(Redacted.value(first), Redacted.value(second))
      assert.strictEqual(Redacted.value(first).length, 32)
      assert.strictEqual(statSync(join(dir, keyFileName)).mode & 0o777, 0o600)
      const configured = yield* deliverySecretsKey(Option.some(Redacted.make(Buffer.alloc(32, 1).toString("base64"))), dir)
      assert.deepStrictEqual([...Redacted.value(configured)], [...Buffer.alloc(32, 1)])
      const bad = yield* Effect.flip(deliverySecretsKey(Option.some(Redacted.make("c2hvcnQ=")), dir))
      assert.strictEqual(bad._tag, "SecretsError")
    }))
})
