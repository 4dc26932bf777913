import { assert, describe, layer } from "@effect/vitest"
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream"
import type { JsMsg } from "@nats-io/jetstream"
import { Effect } from "effect"
import { Nats } from "../../infra/nats/Nats.ts"
import { createKey, eventually, request } from "../fixtures/http.ts"
import { connectAsReader } from "../fixtures/nats.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

interface Received {
  readonly subject: string
  readonly headers: Readonly<Record<string, string>>
  readonly envelope: { readonly eventId: string; readonly revision: number; readonly position: number; readonly entityId: string }
  readonly raw: unknown
}


const received = (msg: JsMsg): Received => {
  const headers = Object.fromEntries((msg.headers?.keys() ?? []).map((k) => [k, msg.headers!.get(k)]))
  const raw = msg.json<Received["envelope"]>()
  return { subject: msg.subject, headers, envelope: raw, raw }
}

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })("NATS consumers", (it) => {
  describe("HISTORY and SNAPSHOTS", () => {
    it.effect("a subscriber sees history.<type>.<id> envelopes with their headers, in order, and snapshot.<type>.<id> holds the latest state", () =>
      Effect.gen(function*() {
        const nc = yield* connectAsReader
        const js = jetstream(nc)
        // an ordered consumer; the filter as a string, since nats-server 2.9 has no multi-subject filters
        const consumer = yield* Effect.promise(() => js.consumers.get("HISTORY", { filter_subjects: "history.advertiser.>" }))
        const messages = yield* Effect.acquireRelease(Effect.promise(() => consumer.consume()), (m) => Effect.promise(() => m.close()).pipe(Effect.asVoid))
        const seen: Array<Received> = []
        yield* Effect.forkScoped(Effect.promise(async () => {
          for await (const msg of messages) seen.push(received(msg))
        }))

        // two entities written interleaved, so global order and per-entity order both matter
        const writes: Array<[string, "PUT" | "PATCH" | "DELETE", unknown]> = [
          ["800", "PUT", { name: "a" }], ["801", "PUT", { name: "x" }], ["800", "PATCH", { domain: "a.example" }],
          ["801", "PATCH", { name: "y" }], ["800", "DELETE", undefined], ["800", "PUT", { name: "b", status: "active" }],
          ["801", "PATCH", { status: "paused" }], ["800", "PATCH", { name: "c" }]
        ]
        for (const [id, method, body] of writes) {
          const res = yield* request({ method, url: `/v1/entities/advertiser/${id}`, ...(body === undefined ? {} : { body }) })
          assert.isTrue(res.statusCode < 300, res.body)
        }
        yield* eventually(Effect.sync(() => seen.length), (n) => n >= writes.length)
        assert.strictEqual(seen.length, writes.length)

        const auditor = yield* createKey("auditor")
        const global = (yield* request({ method: "GET", url: "/v1/history?limit=1000", key: auditor.secret })).json() as { events: ReadonlyArray<unknown> }
        // the messages are the envelopes the API serves, in the same (global commit) order
        assert.deepStrictEqual(seen.map((m) => m.raw), global.events)
        for (const m of seen) {
          assert.strictEqual(m.subject, `history.advertiser.${m.envelope.entityId}`)
          assert.strictEqual(m.headers["Nats-Msg-Id"], m.envelope.eventId)
          assert.strictEqual(m.headers["Tributary-Revision"], String(m.envelope.revision))
          assert.strictEqual(m.headers["Tributary-Position"], String(m.envelope.position))
        }
        const positions = seen.map((m) => m.envelope.position)
        for (let i = 1; i < positions.length; i++) assert.isAbove(positions[i]!, positions[i - 1]!)
        assert.deepStrictEqual(seen.filter((m) => m.envelope.entityId === "800").map((m) => m.envelope.revision), [0, 1, 2, 3, 4])
        assert.deepStrictEqual(seen.filter((m) => m.envelope.entityId === "801").map((m) => m.envelope.revision), [0, 1, 2])

        // SNAPSHOTS keeps one message per subject: the latest state
        const jsm = yield* Effect.promise(() => jetstreamManager(nc))
        for (const id of ["800", "801"]) {
          const current = (yield* request({ method: "GET", url: `/v1/entities/advertiser/${id}` })).json() as { revision: number; state: unknown; updatedAt: string }
          const snapshot = yield* eventually(
            Effect.promise(() => jsm.streams.getMessage("SNAPSHOTS", { last_by_subj: `snapshot.advertiser.${id}` })),
            (msg) => msg !== null && msg.json<{ revision: number }>().revision === current.revision
          )
          const body = snapshot!.json<{ type: string; id: string; revision: number; deleted: boolean; state: unknown; updatedAt: string }>()
          assert.deepStrictEqual(
            { type: body.type, id: body.id, revision: body.revision, deleted: body.deleted, state: body.state, updatedAt: body.updatedAt },
            { type: "advertiser", id, revision: current.revision, deleted: false, state: current.state, updatedAt: current.updatedAt }
          )
          const info = yield* Effect.promise(() => jsm.streams.info("SNAPSHOTS", { subjects_filter: `snapshot.advertiser.${id}` }))
          assert.strictEqual(info.state.subjects?.[`snapshot.advertiser.${id}`], 1)
        }

        // a deleted entity's snapshot says so
        yield* request({ method: "DELETE", url: "/v1/entities/advertiser/801" })
        const gone = yield* eventually(
          Effect.promise(() => jsm.streams.getMessage("SNAPSHOTS", { last_by_subj: "snapshot.advertiser.801" })),
          (msg) => msg !== null && msg.json<{ revision: number }>().revision === 3
        )
        const deleted = gone!.json<{ deleted: boolean; state: unknown }>()
        assert.strictEqual(deleted.deleted, true)
        assert.isNull(deleted.state)
        yield* eventually(Effect.sync(() => seen.length), (n) => n === writes.length + 1)
        assert.strictEqual(seen[seen.length - 1]!.headers["Tributary-Revision"], "3")
      }))

    it.effect("a durable consumer with one filter resumes where it acknowledged, at the platform's sequence numbers, and a message get reads a snapshot", () =>
      Effect.gen(function*() {
        const nc = yield* connectAsReader
        const jsm = yield* Effect.promise(() => jetstreamManager(nc))
        for (const [id, name] of [["900", "a"], ["901", "x"], ["900", "b"]] as const) {
          const res = yield* request({ method: "PUT", url: `/v1/entities/advertiser/${id}`, body: { name } })
          assert.isTrue(res.statusCode < 300, res.body)
        }
        yield* Effect.promise(() =>
          jsm.consumers.add("HISTORY", { durable_name: "auditor-900", filter_subject: "history.advertiser.900", ack_policy: AckPolicy.Explicit }))
        const next = Effect.promise(async () => (await jetstream(nc).consumers.get("HISTORY", "auditor-900")).next({ expires: 30_000 }))
        const first = yield* next
        assert.strictEqual(first?.subject, "history.advertiser.900")
        yield* Effect.promise(() => first!.ackAck())
        // taken up again (a restarted auditor): the next message, not the acknowledged one
        const second = yield* next
        assert.strictEqual(second?.subject, "history.advertiser.900")
        assert.isAbove(second!.seq, first!.seq)
        // the reader's HISTORY is a mirror with the platform's numbering: the same message at the same sequence
        const { manager } = yield* Nats
        const original = yield* Effect.promise(() => manager.streams.getMessage("HISTORY", { seq: second!.seq }))
        assert.strictEqual(original?.string(), second!.string())
        assert.strictEqual(original?.header.get("Nats-Msg-Id"), second!.headers?.get("Nats-Msg-Id"))

        const current = (yield* request({ method: "GET", url: "/v1/entities/advertiser/900" })).json() as { revision: number; state: unknown }
        const snapshot = yield* eventually(
          Effect.promise(() => jsm.streams.getMessage("SNAPSHOTS", { last_by_subj: "snapshot.advertiser.900" })),
          (msg) => msg !== null && msg.json<{ revision: number }>().revision === current.revision,
          "60 seconds"
        )
        assert.deepStrictEqual(snapshot!.json<{ state: unknown }>().state, current.state)
      }))
  })
})
