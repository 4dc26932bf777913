/**
 * A destination's dead letters and status over HTTP, on a real nats-server: dead letters published on
 * DLQ as the deliverer publishes them are listed (paged, oldest first), replayed (a new chunk on
 * DELIVER with new Idempotency-Keys, the letter gone) and discarded (the reason in the destination's
 * history, the letter gone); the status adds the deliverer's KV entry, the chunks waiting on DELIVER
 * and the dead letters. Partner keys are refused; bad input answers problem+json naming the field.
 */
import { assert, describe, layer } from "@effect/vitest"
import { headers as natsHeaders } from "@nats-io/transport-node"
import { Effect, Schema } from "effect"
import { Chunk, chunkId, type DeliveryRecord, idempotencyKey } from "../../domain/delivery/Chunk.ts"
import type { DeadLetter } from "../../domain/delivery/DeadLetter.ts"
import { DeadLetterQueue } from "../../domain/delivery/DeadLetterQueue.ts"
import type { DelivererStatus, DestinationStatus } from "../../domain/delivery/DestinationStatus.ts"
import { deliveryStatusBucket } from "../../domain/delivery/DestinationStatus.ts"
import { laneOfRecord } from "../../domain/delivery/replay.ts"
import { deliverSubject, destinationLanes, StreamNames } from "../../domain/subjects.ts"
import { openBucket } from "../../infra/nats/buckets.ts"
import { Nats } from "../../infra/nats/Nats.ts"
import { assertInvalid, assertProblem, createKey, eventually, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"
import { DeliveryLedger } from "../../domain/delivery/DeliveryLedger.ts"
import * as DeliveryLedgerJetStream from "../../infra/delivery/deliveryLedger.ts"

const LANES = 2

const record = (userId: string, op: "add" | "remove" = "add"): DeliveryRecord => ({
  idKind: "cookie", userId, segmentId: "1", op, time: "2026-11-28T10:00:00.000Z"
})

const letter = (destination: string, id: string, users: ReadonlyArray<string>): DeadLetter => ({
  id,
  destination,
  records: users.map((user) => record(user)),
  attempts: [
    { at: "2026-11-28T10:00:01.000Z", status: 500, body: "try later" },
    { at: "2026-11-28T10:00:02.000Z", error: "timeout" },
    { at: "2026-11-28T10:00:04.000Z", status: 400, body: "{\"error\":\"bad user\"}" }
  ]
})

/** Through the deliverer's ledger: JSON on `dlq.<destination>`, `Nats-Msg-Id` = its id, its place in the index. */
const publishDeadLetter = (deadLetter: DeadLetter) =>
  DeliveryLedger.use((ledger) => ledger.deadLetter(deadLetter)).pipe(Effect.provide(DeliveryLedgerJetStream.layerJetStream), Effect.orDie)

/** A chunk put on DELIVER as the package publisher puts it. */
const putOnDeliver = (chunk: Chunk) =>
  Effect.gen(function*() {
    const { jetstream } = yield* Nats
    yield* Effect.promise(() => jetstream.publish(deliverSubject(chunk.destination, chunk.lane), JSON.stringify(chunk), { msgID: chunkId(chunk) }))
  })

/** Every chunk on DELIVER for the destination, in stream order. */
const chunksOn = (destination: string) =>
  Effect.gen(function*() {
    const { manager } = yield* Nats
    const chunks: Array<{ subject: string; chunk: Chunk }> = []
    for (let seq = 1; ;) {
      const at = seq
      const msg = yield* Effect.promise(() => manager.streams.getMessage(StreamNames.deliver, { seq: at, next_by_subj: destinationLanes(destination) } as never))
      if (msg === null) return chunks
      chunks.push({ subject: msg.subject, chunk: Schema.decodeUnknownSync(Schema.fromJsonString(Chunk))(msg.string()) })
      seq = msg.seq + 1
    }
  })

const createDestination = (id: string, fields: Record<string, unknown> = {}) =>
  Effect.gen(function*() {
    const partner = yield* request({ method: "PUT", url: "/v1/entities/partner/acme", body: { name: "Acme" } })
    assert.include([200, 201], partner.statusCode, partner.body)
    const res = yield* request({
      method: "PUT",
      url: `/v1/entities/destination/${id}`,
      body: { partnerId: "acme", url: "http://127.0.0.1:9/members", format: "json-array", ratePerSecond: 200, segmentIds: ["1"], ...fields }
    })
    assert.strictEqual(res.statusCode, 201, res.body)
  })

const listDeadLetters = (destination: string, query = "") =>
  Effect.gen(function*() {
    const res = yield* request({ method: "GET", url: `/v1/destinations/${destination}/dead-letters${query}` })
    assert.strictEqual(res.statusCode, 200, res.body)
    return res.json() as { items: ReadonlyArray<{ id: string; records: ReadonlyArray<DeliveryRecord>; attempts: ReadonlyArray<unknown> }>; next?: number }
  })

const status = (destination: string) =>
  Effect.gen(function*() {
    const res = yield* request({ method: "GET", url: `/v1/destinations/${destination}/status` })
    assert.strictEqual(res.statusCode, 200, res.body)
    return res.json() as DestinationStatus
  })

// No deliverer: the chunks a replay enqueues stay on DELIVER to be looked at, and no new dead letters appear.
layer(layerTestPlatform({ DELIVERY_ENABLED: "false" }), { excludeTestServices: true, timeout: 60_000 })("destination delivery routes", (it) => {
  describe("dead letters", () => {
    it.effect("lists a destination's dead letters oldest first, with every attempt, paged", () =>
      Effect.gen(function*() {
        yield* createDestination("list-dsp")
        const letters = [letter("list-dsp", "list-dsp.0.continuous.0.0", ["u1", "u2"]), letter("list-dsp", "list-dsp.0.continuous.0.1", ["u3"]), letter("list-dsp", "list-dsp.0.continuous.1.0", ["u4"])]
        // another destination's letter is not listed
        yield* publishDeadLetter(letter("other-dsp", "other-dsp.0.continuous.0.0", ["x"]))
        for (const l of letters) yield* publishDeadLetter(l)

        const first = yield* listDeadLetters("list-dsp", "?limit=2")
        assert.deepStrictEqual(first.items, letters.slice(0, 2).map(({ id, records, attempts }) => ({ id, records, attempts })))
        assert.isNumber(first.next)
        const second = yield* listDeadLetters("list-dsp", `?limit=2&after=${first.next}`)
        assert.deepStrictEqual(second.items.map((i) => i.id), [letters[2]!.id])
        assert.isUndefined(second.next)
        assert.strictEqual((yield* status("list-dsp")).deadLetters, 3)
      }))

    it.effect("a page of large dead letters holds at most about 8 MiB, whatever its limit, and the pages list every letter once", () =>
      Effect.gen(function*() {
        // Before stop 28: 60 letters of 1,000 records were one 51 MB page (16 at once: +1 GB of RSS, for good).
        yield* createDestination("large-dsp")
        const users = (n: number) => Array.from({ length: 1_000 }, (_, i) => `${"u".repeat(240)}-${n}-${i}`)
        const letters = Array.from({ length: 48 }, (_, n) => letter("large-dsp", `large-dsp.0.continuous.${n}.0`, users(n)))
        for (const l of letters) yield* publishDeadLetter(l)
        const pages: Array<{ readonly ids: ReadonlyArray<string>; readonly chars: number }> = []
        for (let after: number | undefined, first = true; first || after !== undefined; first = false) {
          const res = yield* request({ method: "GET", url: `/v1/destinations/large-dsp/dead-letters?limit=1000${after === undefined ? "" : `&after=${after}`}` })
          assert.strictEqual(res.statusCode, 200)
          const page = res.json() as { readonly items: ReadonlyArray<{ readonly id: string }>; readonly next?: number }
          pages.push({ ids: page.items.map((i) => i.id), chars: res.body.length })
          after = page.next
        }
        assert.isAbove(pages.length, 1)
        for (const page of pages) assert.isBelow(page.chars, 9 * 1024 * 1024)
        assert.deepStrictEqual(pages.flatMap((p) => p.ids), letters.map((l) => l.id))
      }), { timeout: 120_000 })

    it.effect("replays named dead letters as new chunks on DELIVER with new Idempotency-Keys, in their users' lanes, then removes them", () =>
      Effect.gen(function*() {
        yield* createDestination("replay-dsp", { lanes: LANES })
        const users = ["u1", "u2", "u3", "u4", "u5", "u6"]
        const one = letter("replay-dsp", "replay-dsp.0.continuous.3.0", users)
        const two = letter("replay-dsp", "replay-dsp.1.continuous.3.0", ["u7"])
        const three = letter("replay-dsp", "replay-dsp.1.continuous.4.0", ["u8"])
        for (const l of [one, two, three]) yield* publishDeadLetter(l)

        // an unknown id: nothing is replayed
        const unknown = yield* request({ method: "POST", url: "/v1/destinations/replay-dsp/dead-letters/replay", body: { ids: [one.id, "no-such-letter"] } })
        assertProblem(unknown, 404, "not-found")
        assert.deepStrictEqual(yield* chunksOn("replay-dsp"), [])

        const res = yield* request({ method: "POST", url: "/v1/destinations/replay-dsp/dead-letters/replay", body: { ids: [one.id] } })
        assert.strictEqual(res.statusCode, 202, res.body)
        assert.deepStrictEqual(res.json(), { replayed: 1, remaining: 2 })

        // through the package outbox, which puts them on DELIVER
        const chunks = yield* eventually(chunksOn("replay-dsp"), (cs) => cs.flatMap(({ chunk }) => chunk.records).length === users.length, "30 seconds")
        assert.sameMembers(chunks.flatMap(({ chunk }) => chunk.records.map((r) => r.userId)), users)
        for (const { subject, chunk } of chunks) {
          assert.match(chunk.packageId, /^replay-[0-9a-f-]{36}$/)
          assert.strictEqual(subject, deliverSubject("replay-dsp", chunk.lane))
          for (const r of chunk.records) assert.strictEqual(chunk.lane, laneOfRecord(r, LANES), `${r.userId} in its lane`)
          assert.notStrictEqual(idempotencyKey(chunk, 0), one.id)
        }
        // users in order within each lane
        for (const { chunk } of chunks) assert.deepStrictEqual(chunk.records.map((r) => r.userId), users.filter((u) => laneOfRecord(record(u), LANES) === chunk.lane))
        assert.deepStrictEqual((yield* listDeadLetters("replay-dsp")).items.map((i) => i.id), [two.id, three.id])

        // all the rest; then none left
        const all = yield* request({ method: "POST", url: "/v1/destinations/replay-dsp/dead-letters/replay", body: {} })
        assert.strictEqual(all.statusCode, 202, all.body)
        assert.deepStrictEqual(all.json(), { replayed: 2, remaining: 0 })
        assert.deepStrictEqual((yield* listDeadLetters("replay-dsp")).items, [])
        const after = yield* eventually(chunksOn("replay-dsp"), (cs) => cs.length === chunks.length + 2, "30 seconds")
        assert.sameMembers(after.slice(chunks.length).map(({ chunk }) => chunk.records[0]!.userId), ["u7", "u8"])
      }))

    it.effect("discards a dead letter with a reason kept in the destination's history, then removes it", () =>
      Effect.gen(function*() {
        yield* createDestination("discard-dsp")
        const gone = letter("discard-dsp", "discard-dsp.0.continuous.9.0", ["u1", "u2", "u3"])
        const kept = letter("discard-dsp", "discard-dsp.0.continuous.9.1", ["u4"])
        yield* publishDeadLetter(gone)
        yield* publishDeadLetter(kept)

        const noReason = yield* request({ method: "DELETE", url: `/v1/destinations/discard-dsp/dead-letters/${gone.id}`, body: {} })
        assertInvalid(noReason, "body", "/reason")

        const [queued] = yield* DeadLetterQueue.use((queue) => queue.get("discard-dsp", [gone.id]))
        const res = yield* request({ method: "DELETE", url: `/v1/destinations/discard-dsp/dead-letters/${gone.id}`, body: { reason: "user opted out at the partner" } })
        assert.strictEqual(res.statusCode, 204, res.body)
        // removing it again (a discard or replay repeated after a crash) is no error
        yield* DeadLetterQueue.use((queue) => queue.remove("discard-dsp", queued!))
        assert.deepStrictEqual((yield* listDeadLetters("discard-dsp")).items.map((i) => i.id), [kept.id])

        const history = yield* request({ method: "GET", url: "/v1/entities/destination/discard-dsp/history" })
        assert.strictEqual(history.statusCode, 200, history.body)
        const events = (history.json() as { events: ReadonlyArray<{ type: string; data: unknown }> }).events
        assert.deepInclude(events.map((e) => ({ type: e.type, data: e.data })), {
          type: "DeadLetterDiscarded",
          data: { deadLetterId: gone.id, reason: "user opted out at the partner", records: 3 }
        })

        const again = yield* request({ method: "DELETE", url: `/v1/destinations/discard-dsp/dead-letters/${gone.id}`, body: { reason: "again" } })
        assertProblem(again, 404, "not-found")
      }))
    it.effect("a deleted destination's dead letters and waiting chunks are dropped, said in its history, and none reach a destination created again under its id", () =>
      Effect.gen(function*() {
        const waiting = (userId: string): Chunk => ({ destination: "gone-dsp", lane: 0, packageId: `refresh-${userId}`, kind: "refresh", seq: 0, records: [record(userId)] })
        /** What a deleted destination may still have: what its delivery left, or a deliverer still running. */
        const leftovers = (n: number) =>
          Effect.gen(function*() {
            for (let i = 0; i < n; i++) yield* publishDeadLetter(letter("gone-dsp", `gone-dsp.0.continuous.${n}.${i}`, [`u${i}`]))
            yield* putOnDeliver(waiting(`w${n}`))
          })
        const dropped = Effect.gen(function*() {
          const history = yield* request({ method: "GET", url: "/v1/entities/destination/gone-dsp/history" })
          assert.strictEqual(history.statusCode, 200, history.body)
          return (history.json() as { events: ReadonlyArray<{ type: string; data: unknown }> }).events.filter((e) => e.type === "DeliveryDropped").map((e) => e.data)
        })
        yield* createDestination("gone-dsp")
        yield* leftovers(2)
        const deleted = yield* request({ method: "DELETE", url: "/v1/entities/destination/gone-dsp" })
        assert.strictEqual(deleted.statusCode, 200, deleted.body)
        assert.strictEqual(yield* DeadLetterQueue.use((queue) => queue.count("gone-dsp")), 0)
        assert.deepStrictEqual(yield* chunksOn("gone-dsp"), [])
        assert.deepStrictEqual(yield* dropped, [{ deadLetters: 2, chunks: 1, reason: "destination deleted" }])

        // a drop cut short by a crash (or a deliverer that had not stopped yet) leaves some: dropped before the next creation
        yield* leftovers(3)
        yield* createDestination("gone-dsp")
        assert.deepStrictEqual((yield* listDeadLetters("gone-dsp")).items, [])
        assert.deepStrictEqual(yield* chunksOn("gone-dsp"), [])
        assert.deepStrictEqual((yield* dropped).slice(1), [{ deadLetters: 3, chunks: 1, reason: "deleted destination: dropped before a destination was created again under its id" }])
      }))
    it.effect("an id never created had no predecessor: chunks already waiting under it are kept when it is created", () =>
      Effect.gen(function*() {
        const chunk: Chunk = { destination: "fresh-dsp", lane: 0, packageId: "refresh-early", kind: "refresh", seq: 0, records: [record("u1")] }
        yield* putOnDeliver(chunk)
        yield* createDestination("fresh-dsp")
        assert.strictEqual((yield* chunksOn("fresh-dsp")).length, 1)
        const history = yield* request({ method: "GET", url: "/v1/entities/destination/fresh-dsp/history" })
        assert.notInclude(history.body, "DeliveryDropped")
      }))
  })

  describe("status", () => {
    it.effect("answers zeros and a closed circuit before any deliverer; then the deliverer's entry, the records waiting on DELIVER, the dead letters and the ETA", () =>
      Effect.gen(function*() {
        yield* createDestination("status-dsp", { ratePerSecond: 50 })
        assert.deepStrictEqual(yield* status("status-dsp"), {
          ratePerSecond: 50, currentRate: 0, sent: 0, succeeded: 0, retried: 0, failed: 0, deadLetters: 0, backlog: 0, etaSeconds: 0,
          latencyP50Ms: null, latencyP99Ms: null, circuit: "closed", deadLettersRefused: false
        })

        // chunks as packages publishes them (no record-count header: counted from their bodies), one of them with the header
        const { jetstream } = yield* Nats
        const chunk = (lane: number, seq: number, users: ReadonlyArray<string>): Chunk => ({
          destination: "status-dsp", lane, packageId: "continuous", kind: "continuous", seq, records: users.map((u) => record(u))
        })
        yield* Effect.promise(() => jetstream.publish(deliverSubject("status-dsp", 0), JSON.stringify(chunk(0, 0, ["a", "b", "c"]))))
        yield* Effect.promise(() => jetstream.publish(deliverSubject("status-dsp", 1), JSON.stringify(chunk(1, 0, ["d", "e"]))))
        const h = natsHeaders()
        h.set("Tributary-Records", "4")
        yield* Effect.promise(() => jetstream.publish(deliverSubject("status-dsp", 0), JSON.stringify(chunk(0, 1, ["f", "g", "h", "i"])), { headers: h }))
        yield* publishDeadLetter(letter("status-dsp", "status-dsp.0.continuous.0.0", ["z"]))

        // as the deliverer writes its status, about once a second
        const bucket = yield* openBucket(deliveryStatusBucket)
        const now = Date.now()
        const entry: DelivererStatus = {
          process: "member-1", at: now, ratePerSecond: 50, allowedRate: 35, currentRate: 34, sent: 120, succeeded: 100, retried: 15, failed: 5,
          drainRate: 3, latencyP50Ms: 12, latencyP99Ms: 80, freshnessP50Ms: 900, freshnessP99Ms: 2_000, circuit: "half-open"
        }
        yield* Effect.promise(() => bucket.put("status-dsp", JSON.stringify(entry)))

        assert.deepStrictEqual(yield* status("status-dsp"), {
          ratePerSecond: 50, currentRate: 34, sent: 120, succeeded: 100, retried: 15, failed: 5, deadLetters: 1, backlog: 9, etaSeconds: 3,
          latencyP50Ms: 12, latencyP99Ms: 80, circuit: "half-open", deadLettersRefused: false
        })

        // per-lane entries add up
        yield* Effect.promise(() => bucket.put("status-dsp.1", JSON.stringify({ ...entry, currentRate: 6, sent: 10, succeeded: 10, retried: 0, failed: 0, drainRate: 1, latencyP99Ms: 95, circuit: "open" })))
        const both = yield* status("status-dsp")
        assert.deepInclude(both, { currentRate: 40, sent: 130, succeeded: 110, etaSeconds: 3, latencyP99Ms: 95, circuit: "open" })
      }))

    it.effect("404 for an unknown destination; 400 naming a bad id", () =>
      Effect.gen(function*() {
        assertProblem(yield* request({ method: "GET", url: "/v1/destinations/nowhere/status" }), 404, "not-found")
        assertProblem(yield* request({ method: "GET", url: "/v1/destinations/nowhere/dead-letters" }), 404, "not-found")
        assertInvalid(yield* request({ method: "GET", url: "/v1/destinations/Not_A_Slug/status" }), "path", "/id")
        assertInvalid(yield* request({ method: "GET", url: "/v1/destinations/list-dsp/dead-letters?limit=0" }), "query", "/limit")
        assertInvalid(yield* request({ method: "POST", url: "/v1/destinations/list-dsp/dead-letters/replay", body: { ids: [] } }), "body", "/ids")
      }))
  })

  describe("roles", () => {
    it.effect("a partner key is refused; an auditor reads but may not replay or discard", () =>
      Effect.gen(function*() {
        yield* createDestination("roles-dsp")
        const partner = yield* createKey("partner:acme")
        const auditor = yield* createKey("auditor")
        for (const url of ["/v1/destinations/roles-dsp/status", "/v1/destinations/roles-dsp/dead-letters"]) {
          assertProblem(yield* request({ method: "GET", url, key: partner.secret }), 403, "forbidden")
          const res = yield* request({ method: "GET", url, key: auditor.secret })
          assert.strictEqual(res.statusCode, 200, res.body)
        }
        assertProblem(yield* request({ method: "POST", url: "/v1/destinations/roles-dsp/dead-letters/replay", key: partner.secret, body: {} }), 403, "forbidden")
        assertProblem(yield* request({ method: "POST", url: "/v1/destinations/roles-dsp/dead-letters/replay", key: auditor.secret, body: {} }), 403, "forbidden")
        assertProblem(yield* request({ method: "DELETE", url: "/v1/destinations/roles-dsp/dead-letters/x", key: auditor.secret, body: { reason: "r" } }), 403, "forbidden")
        assertProblem(yield* request({ method: "GET", url: "/v1/destinations/roles-dsp/status", key: null }), 401, "unauthorized")
      }))
  })
})
