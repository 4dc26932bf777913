/**
 * The SDK's door on a real HTTP server: the route with its real services (API keys in SQLite, the
 * metadata cache and the EVENTS publisher on a real nats-server), with no device pipeline consuming
 * EVENTS, so what the route stored can be read back and the stream fills up.
 */
import { request as request_ } from "node:http"
import { join } from "node:path"
import { gzipSync } from "node:zlib"
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Layer, Option, Redacted } from "effect"
import { buildApp } from "../../api/app.ts"
import { AdminApiKey } from "../../api/auth.ts"
import { appEventsRoutes } from "../../api/routes/appEvents.ts"
import { ApiKeys } from "../../domain/ApiKeys.ts"
import { EventBatch } from "../../domain/events/SdkEvent.ts"
import { eventsSubject, snapshotSubject, StreamNames } from "../../domain/subjects.ts"
import * as ApiKeysSqlite from "../../infra/apiKeys/sqlite.ts"
import * as EventIntakeJetStream from "../../infra/events/eventIntake.ts"
import * as MetadataCache from "../../infra/events/metadataCache.ts"
import * as EventStoreSqlite from "../../infra/eventstore/sqlite.ts"
import * as ReadModelSqlite from "../../infra/readmodel/sqlite.ts"
import { Nats } from "../../infra/nats/Nats.ts"
import { streamMessages } from "../fixtures/jetstreamContents.ts"
import { layerTestNats } from "../fixtures/nats.ts"
import { tempDir } from "../fixtures/tempDir.ts"

const limits = { bodyMaxBytes: 256 * 1024, inflightMaxBytes: 512 * 1024, bodyTimeout: "8 seconds" as const, maxEvents: 500, maxLineBytes: 4096, maxJsonDepth: 64 }
/** Small enough to fill in a test, and sixteen bodies, as the platform's configuration requires of EVENTS_MAX_BYTES. */
const eventsMaxBytes = 16 * limits.bodyMaxBytes
const maxPending = 20
/** One app's share of EVENTS */
const appMaxBytes = 128 * 1024

class Door extends Context.Service<Door, { readonly url: string; readonly key: (role: string) => Effect.Effect<string> }>()("test/Door") {}

const layerDoor = Layer.effect(Door, Effect.gen(function*() {
  const dir = yield* tempDir("app-events")
  const services = yield* Layer.build(Layer.mergeAll(
    ApiKeysSqlite.layerSqlite({ path: join(dir, "keys.db") }),
    // the event store and read model it falls back to, empty: apps here are only on SNAPSHOTS
    MetadataCache.layer().pipe(Layer.provide(Layer.mergeAll(
      EventStoreSqlite.layerSqlite({ path: join(dir, "events.db") }),
      ReadModelSqlite.layerSqlite({ path: join(dir, "readmodel.db") })
    ))),
    EventIntakeJetStream.layer({ messageMaxBytes: 65_536, maxPending, appMaxBytes }),
    Layer.succeed(AdminApiKey, Option.some(Redacted.make("test-admin-key-0123456789")))
  ).pipe(Layer.provideMerge(Layer.succeedContext(yield* Effect.context<Nats>()))))
  const app = yield* Effect.promise(() => buildApp({ routes: appEventsRoutes(limits), run: Effect.runPromiseExitWith(services) }))
  const url = yield* Effect.acquireRelease(Effect.promise(() => app.listen({ port: 0, host: "127.0.0.1" })), () => Effect.promise(() => app.close()))
  const keys = Context.get(services, ApiKeys)
  return Door.of({ url, key: (role) => Effect.map(Effect.orDie(keys.create({ name: role, role: role as never })), (created) => created.secret) })
})).pipe(Layer.provideMerge(layerTestNats({ eventsMaxBytes })))

/** An app as the relay would publish its snapshot: what the route's existence check reads. */
const publishApp = (id: string) =>
  Effect.gen(function*() {
    const { jetstream } = yield* Nats
    const snapshot = { type: "app", id, revision: 0, position: 1, deleted: false, state: { name: `App ${id}`, publisher: "Acme", category: "games" }, createdAt: null, updatedAt: null }
    yield* Effect.promise(() => jetstream.publish(snapshotSubject("app", id), JSON.stringify(snapshot)))
  })

const event = (deviceId: string, seq: number, extra: Record<string, unknown> = {}) =>
  ({ deviceId, seq, time: "2026-05-01T12:00:00Z", type: "open", dims: { platform: "ios", country: "FR" }, ...extra })

/** A batch (JSON) of `count` custom events of devices `<prefix>…`, each with a note of `noteLength` characters: bytes to fill bounds with. */
const bulky = (prefix: string, count: number, noteLength: number) =>
  JSON.stringify(Array.from({ length: count }, (_, i) => event(`${prefix}-${i}`, i, { type: "custom", name: "n", props: { note: "z".repeat(noteLength) } })))

/**
 * A POST of `text` whose body is written by the test (`request.write`, `request.end`), so the server holds
 * what it read of it meanwhile; `answer` is the status and body it is answered with (-1: the connection failed).
 */
const heldPost = (app: string, key: string, text: string) =>
  Effect.map(Door, ({ url }) => {
    const request = request_(`${url}/v1/apps/${app}/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json", "content-length": String(Buffer.byteLength(text)) }
    })
    const answer = Effect.promise(() => new Promise<{ status: number; body: string }>((resolve) => {
      request.on("response", (res) => {
        let body = ""
        res.on("data", (chunk: Buffer) => (body += chunk.toString()))
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
      })
      request.on("error", () => resolve({ status: -1, body: "" }))
    }))
    return { request, answer }
  })

const post = (app: string, key: string, body: string | Uint8Array, headers: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const { url } = yield* Door
    const response = yield* Effect.promise(() =>
      fetch(`${url}/v1/apps/${app}/events`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers }, body }))
    const text = yield* Effect.promise(() => response.text())
    return { status: response.status, retryAfter: response.headers.get("retry-after"), type: response.headers.get("content-type"), body: text.startsWith("{") ? JSON.parse(text) : text }
  })

/** The events EVENTS holds for an app, decoded as EventBatch messages. */
const storedEvents = (app: string) =>
  Effect.map(streamMessages(StreamNames.events), (messages) =>
    messages.filter((m) => m.subject === eventsSubject(app)).flatMap((m) => EventBatch.make(m.body as EventBatch).events))

layer(layerDoor, { excludeTestServices: true, timeout: 60_000 })("POST /v1/apps/{app}/events", (it) => {
  it.effect("an SDK key sends for its own app only (403 for another); a service key may send for any", () =>
    Effect.gen(function*() {
      yield* publishApp("11")
      yield* publishApp("12")
      const door = yield* Door
      const sdk = yield* door.key("app:11")
      const refused = yield* post("12", sdk, JSON.stringify([event("d1", 0)]))
      assert.strictEqual(refused.status, 403)
      assert.match(String(refused.type), /application\/problem\+json/)
      assert.match(refused.body.detail, /app:11 key may act only for app 11/)
      assert.deepStrictEqual((yield* post("11", sdk, JSON.stringify([event("d1", 0)]))).body, { accepted: 1, rejected: [] })
      const service = yield* door.key("service")
      assert.strictEqual((yield* post("12", service, JSON.stringify([event("d1", 0)]))).status, 202)
      assert.strictEqual((yield* post("13", service, JSON.stringify([event("d1", 0)]))).status, 404, "no such app")
    }))

  it.effect("malformed events are rejected by index and reason; the rest of the batch is stored on EVENTS", () =>
    Effect.gen(function*() {
      yield* publishApp("21")
      const sdk = yield* (yield* Door).key("app:21")
      const future = new Date(Date.now() + 25 * 3600_000).toISOString()
      const batch = [
        event("d1", 0),
        { deviceId: "d1", seq: -1, time: "2026-05-01T12:00:00Z", type: "open" },
        event("d1", 1, { type: "custom", props: { level: 3 } }),
        event("d1", 2, { time: future }),
        event("d1", 3, { type: "impression", creativeId: "c1" }),
        event("d1", 4, { type: "custom", name: "purchase", props: { sku: "x", price: 2.5 } }),
        event("d1", 5, { dims: { platform: 7 } }),
        event("d1", 6, { type: "click", campaignId: "900", creativeId: "c1" }),
        // two of these in a minute made its sum Infinity, and the metrics over it answered 500
        event("d1", 7, { type: "custom", name: "purchase", props: { price: 1e308 } }),
        // year −1 in UTC: its session's start was no RFC 3339 date-time, and the session was set aside
        event("d1", 8, { time: "0000-01-01T00:00:00+23:59" }),
        // accepted, then silently never counted
        JSON.parse(`{"deviceId":"d1","seq":9,"time":"2026-05-01T12:00:00Z","type":"custom","name":"x","props":{"__proto__":5}}`),
        event("d1", 10, { time: "0000-01-01T00:00:00Z" }),
        // an integer, but not a safe one: the reason said "Expected an integer"
        event("d1", 2 ** 53),
        // keys out of 1–64 characters were dropped, the event accepted without them
        event("d1", 11, { type: "custom", name: "n", props: { ["k".repeat(65)]: 7, ok: 1 } }),
        event("d1", 12, { type: "custom", name: "n", props: { "": 5 } })
      ]
      const res = yield* post("21", sdk, JSON.stringify(batch))
      assert.strictEqual(res.status, 202)
      assert.strictEqual(res.body.accepted, 4)
      const reasons = new Map((res.body.rejected as Array<{ index: number; reason: string }>).map((r) => [r.index, r.reason]))
      assert.deepStrictEqual([...reasons.keys()], [1, 2, 3, 4, 6, 8, 9, 10, 12, 13, 14])
      assert.strictEqual(reasons.get(13), "props: a key of 65 characters (1 to 64)")
      assert.strictEqual(reasons.get(14), "props: a key of 0 characters (1 to 64)")
      assert.strictEqual(reasons.get(12), "seq: Expected an integer from 0 to 2^53 − 1")
      assert.strictEqual(reasons.get(9), "time: before 0000-01-01T00:00:00Z")
      assert.strictEqual(reasons.get(10), "props.__proto__: a reserved name")
      assert.match(reasons.get(8)!, /^props\.price: /)
      assert.strictEqual(reasons.get(1), "seq: Expected an integer from 0 to 2^53 − 1")
      assert.match(reasons.get(2)!, /^name: /)
      assert.match(reasons.get(3)!, /^time: more than 24 hours ahead/)
      assert.match(reasons.get(4)!, /^campaignId: /)
      assert.match(reasons.get(6)!, /^dims\.platform: /)
      const stored = yield* storedEvents("21")
      assert.deepStrictEqual(stored.map((e) => e.seq), [0, 4, 6, 10])
      assert.deepStrictEqual(stored[1]!.props, { sku: "x", price: 2.5 })
    }))

  it.effect("JSON Lines and gzip: a line that is not JSON is rejected by its index; a big batch is split into bounded messages", () =>
    Effect.gen(function*() {
      yield* publishApp("31")
      const sdk = yield* (yield* Door).key("app:31")
      const lines = [JSON.stringify(event("d2", 0)), "{not json", "", JSON.stringify(event("d2", 1))].join("\n")
      const res = yield* post("31", sdk, gzipSync(lines), { "content-type": "application/x-ndjson", "content-encoding": "gzip" })
      assert.deepStrictEqual(res.body, { accepted: 2, rejected: [{ index: 1, reason: "event: not valid JSON" }] })
      // 400 events of ~300 characters: more than one 64 KiB message
      const many = Array.from({ length: 400 }, (_, i) => event("d3", i, { type: "custom", name: "level_up", props: { level: i, note: "x".repeat(150) } }))
      const big = yield* post("31", sdk, gzipSync(JSON.stringify(many)), { "content-encoding": "gzip" })
      assert.deepStrictEqual(big.body, { accepted: 400, rejected: [] })
      const messages = (yield* streamMessages(StreamNames.events)).filter((m) => m.subject === eventsSubject("31"))
      assert.isAtLeast(messages.length, 3, "the batch was split")
      assert.deepStrictEqual(messages.flatMap((m) => (m.body as EventBatch).events.filter((e) => e.deviceId === "d3").map((e) => e.seq)), many.map((e) => e.seq))
    }))

  it.effect("413: a body, a line or a batch over its limit, and a gzip bomb; 415: another media type", () =>
    Effect.gen(function*() {
      yield* publishApp("41")
      const sdk = yield* (yield* Door).key("app:41")
      const tooBig = yield* post("41", sdk, "[" + " ".repeat(limits.bodyMaxBytes) + "]")
      assert.strictEqual(tooBig.status, 413)
      const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024, 32))
      assert.isBelow(bomb.length, 100 * 1024)
      assert.strictEqual((yield* post("41", sdk, bomb, { "content-encoding": "gzip" })).status, 413)
      const longLine = JSON.stringify(event("d4", 0, { type: "custom", name: "n", props: { note: "y".repeat(limits.maxLineBytes) } }))
      assert.strictEqual((yield* post("41", sdk, longLine, { "content-type": "application/x-ndjson" })).status, 413)
      const tooMany = Array.from({ length: limits.maxEvents + 1 }, (_, i) => event("d4", i))
      const many = yield* post("41", sdk, JSON.stringify(tooMany))
      assert.strictEqual(many.status, 413)
      assert.match(many.body.detail, /at most 500 events/)
      assert.strictEqual((yield* post("41", sdk, "a,b", { "content-type": "text/csv" })).status, 415)
      // blank lines count: 8 million of them in 7.8 KB of gzip cost 2.1 s of the event loop before
      const blanks = yield* post("41", sdk, gzipSync(Buffer.alloc(200_000, 0x0a), { level: 9 }), { "content-type": "application/x-ndjson", "content-encoding": "gzip" })
      assert.strictEqual(blanks.status, 413)
      assert.match(blanks.body.detail, /at most 500 lines, blank ones too/)
      assert.deepStrictEqual(yield* storedEvents("41"), [], "nothing of a refused body was kept")
    }))

  it.effect("a body nested deeper than MAX_JSON_DEPTH is refused before it is parsed: an array 400 naming the container, a JSON Lines line by its index", () =>
    Effect.gen(function*() {
      yield* publishApp("42")
      const sdk = yield* (yield* Door).key("app:42")
      const open = (seq: number) => JSON.stringify(event("d6", seq)).slice(0, -1)
      // Past the limit the text is not even JSON: the answer says too deep, so it was never parsed.
      const array = yield* post("42", sdk, `[${open(0)},"junk":${"[".repeat(100)}not json`)
      assert.strictEqual(array.status, 400)
      assert.match(String(array.type), /application\/problem\+json/)
      assert.deepStrictEqual(array.body.errors, [{ in: "body", pointer: "/0/junk" + "/0".repeat(62), message: "nested deeper than 64 levels" }])
      const lines = [open(1) + "}", `${open(2)},"junk":${"[".repeat(1_000)}${"]".repeat(1_000)}}`, open(3) + "}"].join("\n")
      const res = yield* post("42", sdk, lines, { "content-type": "application/x-ndjson" })
      assert.deepStrictEqual(res.body, { accepted: 2, rejected: [{ index: 1, reason: "junk: nested deeper than 64 levels" }] })
      assert.deepStrictEqual((yield* storedEvents("42")).map((e) => e.seq), [1, 3])
    }))

  it.effect("text is well-formed: a body that is not UTF-8 is 400, an event holding a lone surrogate is rejected by its index", () =>
    Effect.gen(function*() {
      yield* publishApp("43")
      const sdk = yield* (yield* Door).key("app:43")
      // Latin-1 é: not UTF-8, whichever the form (it used to become U+FFFD, merging devices)
      const [head, tail] = JSON.stringify(event("dev-#", 0)).split("#")
      const latin = Buffer.concat([Buffer.from(head!), Buffer.from([0xe9]), Buffer.from(tail!)])
      for (const contentType of ["application/json", "application/x-ndjson"]) {
        const body = contentType === "application/json" ? Buffer.concat([Buffer.from("["), latin, Buffer.from("]")]) : latin
        const refused = yield* post("43", sdk, body, { "content-type": contentType })
        assert.strictEqual(refused.status, 400, contentType)
        assert.match(refused.body.errors[0].message, /not valid UTF-8/)
      }
      // "\ud800" is valid JSON but not text; a pair (an emoji) is.
      const time = "2026-05-01T12:00:00Z"
      const batch = [
        `{"deviceId":"dev-\\ud800","seq":0,"time":"${time}","type":"open"}`,
        `{"deviceId":"dev-\\udc00","seq":0,"time":"${time}","type":"open"}`,
        `{"deviceId":"dev-\\ud83d\\ude00","seq":0,"time":"${time}","type":"open"}`,
        `{"deviceId":"d7","seq":1,"time":"${time}","type":"custom","name":"lvl\\udfff"}`,
        `{"deviceId":"d7","seq":2,"time":"${time}","type":"custom","name":"n","props":{"k\\ud800":1}}`,
        `{"deviceId":"d7","seq":3,"time":"${time}","type":"open","dims":{"model":"\\udbff"}}`
      ]
      const res = yield* post("43", sdk, `[${batch.join(",")}]`)
      assert.strictEqual(res.status, 202)
      assert.strictEqual(res.body.accepted, 1)
      assert.deepStrictEqual((res.body.rejected as Array<{ index: number; reason: string }>).map((r) => `${r.index} ${r.reason.split(":")[0]}`), ["0 deviceId", "1 deviceId", "3 name", "4 props", "5 dims.model"])
      assert.match(res.body.rejected[0].reason, /not well-formed Unicode/)
      assert.deepStrictEqual((yield* storedEvents("43")).map((e) => e.deviceId), ["dev-\u{1F600}"])
    }))

  it.effect("503 + Retry-After when the app's device pipeline is behind (EVENTS_MAX_PENDING)", () =>
    Effect.gen(function*() {
      yield* publishApp("51")
      const sdk = yield* (yield* Door).key("app:51")
      // Nobody consumes EVENTS here: every batch stays pending. What this process published counts at
      // once, beside the backlog it read from the stream (at most a second ago).
      for (let i = 0; i < maxPending; i++) assert.strictEqual((yield* post("51", sdk, JSON.stringify([event("d5", i)]))).status, 202)
      const refused = yield* post("51", sdk, JSON.stringify([event("d5", 99)]))
      assert.strictEqual(refused.status, 503)
      assert.strictEqual(refused.retryAfter, "5")
      assert.match(refused.body.detail, /device pipeline of app 51 is behind/)
    }))

  it.effect("an app whose batches hold its share of EVENTS (EVENTS_APP_MAX_BYTES) is refused; other apps still send", () =>
    Effect.gen(function*() {
      yield* publishApp("71")
      yield* publishApp("72")
      const door = yield* Door
      const flooding = yield* door.key("app:71")
      const other = yield* door.key("app:72")
      // A few batches of big events, under EVENTS_MAX_PENDING in count: bytes are what run out.
      const batch = (n: number) => bulky(`share-${n}`, 40, 250)
      let sent = 0
      const refused = yield* Effect.gen(function*() {
        for (;;) {
          const res = yield* post("71", flooding, batch(sent++))
          if (res.status !== 202) return res
          yield* Effect.sleep("200 millis") // the backlog is read about once a second
        }
      }).pipe(Effect.timeout("20 seconds"))
      assert.strictEqual(refused.status, 503)
      assert.strictEqual(refused.retryAfter, "5")
      assert.match(refused.body.detail, /device pipeline of app 71 is behind \(about \d+ bytes of its batches on EVENTS, EVENTS_APP_MAX_BYTES 131072\)/)
      assert.isBelow(sent - 1, maxPending, "refused for its bytes, not its count of batches")
      const stored = yield* storedEvents("71")
      assert.strictEqual(stored.length, (sent - 1) * 40, "every acknowledged event is on EVENTS")
      // what it holds: its share and at most the last batch past it (admission is checked before a body is read)
      assert.isAtMost(Buffer.byteLength(JSON.stringify(stored)), appMaxBytes + 2 * 16_000)
      // the stream itself is far from full: another app is taken
      const res = yield* post("72", other, JSON.stringify([event("d72", 0)]))
      assert.strictEqual(res.status, 202)
      assert.strictEqual(res.body.accepted, 1)
    }))

  it.effect("batches sent at once cannot pass the app's share together: each reserves its bytes before it is published", () =>
    Effect.gen(function*() {
      yield* publishApp("73")
      const sdk = yield* (yield* Door).key("app:73")
      const batch = (n: number) => bulky(`together-${n}`, 40, 250)
      // all admitted before any is read (the backlog is 0 then): found by an outside attack, 10 bodies of 8 MiB
      // at once were all stored against a 16 MiB share
      const answers = yield* Effect.forEach(Array.from({ length: 16 }, (_, n) => n), (n) => post("73", sdk, batch(n)), { concurrency: "unbounded" })
      const accepted = answers.filter((res) => res.status === 202)
      const refused = answers.filter((res) => res.status === 503)
      assert.strictEqual(accepted.length + refused.length, 16)
      assert.isAbove(refused.length, 0)
      for (const res of refused) {
        assert.strictEqual(res.retryAfter, "5")
        assert.match(res.body.detail, /device pipeline of app 73 is behind \(about \d+ bytes of its batches on EVENTS, EVENTS_APP_MAX_BYTES 131072\)/)
      }
      const stored = yield* storedEvents("73")
      assert.strictEqual(stored.length, accepted.length * 40, "every acknowledged event is on EVENTS, none of a refused batch")
      assert.isAtMost(Buffer.byteLength(JSON.stringify(stored)), appMaxBytes + 16_000, "within the share and one batch")
    }))

  it.effect("event bodies held at once are bounded (EVENTS_INFLIGHT_MAX_BYTES): past it a request is answered 503, and the bytes come back when a request ends", () =>
    Effect.gen(function*() {
      yield* publishApp("74")
      const sdk = yield* (yield* Door).key("app:74")
      const body = (n: number) => bulky(`held-${n}`, 400, 300)
      // the app known to the door (its metadata cached) before A starts
      assert.strictEqual((yield* post("74", sdk, JSON.stringify([event("held-warm", 0)]))).status, 202)
      // A: most of its body sent, the rest held back, so the server holds what it read of it
      const slow = body(0)
      const cut = Math.floor(slow.length * 0.9)
      const { request, answer } = yield* heldPost("74", sdk, slow)
      request.write(slow.slice(0, cut))
      // B, whole bodies, until one meets what A holds (A's bytes are taken as the server reads them)
      const refused = yield* Effect.gen(function*() {
        for (let n = 1; ; n++) {
          const res = yield* post("74", sdk, body(n))
          if (res.status === 503) return res
          assert.strictEqual(res.status, 202)
          yield* Effect.sleep("100 millis")
        }
      }).pipe(Effect.timeout("20 seconds"))
      assert.strictEqual(refused.retryAfter, "5")
      assert.match(refused.body.detail, /event bodies this process is reading hold EVENTS_INFLIGHT_MAX_BYTES \(524288, at most 262144 for one app\)/)
      // one app holds at most half: another app's body as big is still read
      yield* publishApp("75")
      assert.strictEqual((yield* post("75", yield* (yield* Door).key("app:75"), body(50))).status, 202)
      request.end(slow.slice(cut))
      assert.strictEqual((yield* answer).status, 202, "A, once whole, is taken")
      // A's and the refused one's bytes came back: a body as big is taken again
      assert.strictEqual((yield* post("74", sdk, body(99))).status, 202)
    }))

  it.effect("a body kept open is answered 408 once EVENTS_BODY_TIMEOUT passed, and its bytes come back", () =>
    Effect.gen(function*() {
      yield* publishApp("76")
      const sdk = yield* (yield* Door).key("app:76")
      const text = bulky("open", 400, 300)
      const { request, answer: answered } = yield* heldPost("76", sdk, text)
      // all but a little, then a byte every second: it never ends, but never stops either
      request.write(text.slice(0, text.length - 100))
      const trickle = setInterval(() => request.write(" "), 1_000)
      const answer = yield* answered.pipe(Effect.ensuring(Effect.sync(() => clearInterval(trickle))), Effect.timeout("30 seconds"))
      request.destroy()
      assert.strictEqual(answer.status, 408)
      assert.match(answer.body, /must arrive whole within 8s \(EVENTS_BODY_TIMEOUT\)/)
      // nothing of it kept; what it held is given back (a body of the app's whole share is taken)
      assert.deepStrictEqual(yield* storedEvents("76"), [])
      const big = bulky("after", 400, 490)
      assert.isAbove(Buffer.byteLength(big), 240 * 1024)
      assert.strictEqual((yield* post("76", sdk, big)).status, 202)
    }))

  it.effect("503 + Retry-After when EVENTS is full (EVENTS_MAX_BYTES); what was acknowledged stays", () =>
    Effect.gen(function*() {
      const door = yield* Door
      let accepted = 0
      // many apps, a batch each (within its share): together they fill the stream
      const apps: Array<string> = []
      const full = yield* Effect.gen(function*() {
        for (let n = 0; n < 80; n++) {
          const app = String(101 + n)
          apps.push(app)
          yield* publishApp(app)
          const sdk = yield* door.key(`app:${app}`)
          const batch = bulky(`full-${n}`, 200, 200)
          const res = yield* post(app, sdk, batch)
          if (res.status !== 202) return res
          accepted += res.body.accepted
        }
        return assert.fail("EVENTS never filled up")
      })
      assert.strictEqual(full.status, 503)
      assert.strictEqual(full.retryAfter, "5")
      assert.match(full.body.detail, /EVENTS is full/)
      assert.isAbove(accepted, 0)
      const stored = yield* Effect.forEach(apps, storedEvents)
      assert.strictEqual(stored.flat().length, accepted, "every acknowledged event is on EVENTS")
    }))
})
