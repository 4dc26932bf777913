/**
 * A profile's explain view lists its deliveries (issue 9 item 6): receipts published on a real
 * RECEIPTS stream reach the delivery read model, which keeps the latest per (profile, segment,
 * destination) whatever order they arrive in.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { CommandBus } from "../../domain/CommandBus.ts"
import type { Receipt } from "../../domain/delivery/Receipt.ts"
import { profileId } from "../../domain/ingest/LoaderRecord.ts"
import { receiptSubject } from "../../domain/subjects.ts"
import { Nats } from "../../infra/nats/Nats.ts"
import { createKey, eventually, request } from "../fixtures/http.ts"
import { layerTestPlatform } from "../fixtures/platform.ts"

const USER = "cookie-77"
const OTHER = "cookie-78"

const publish = (receipt: Receipt | string) =>
  Effect.gen(function*() {
    const { jetstream } = yield* Nats
    const body = typeof receipt === "string" ? receipt : JSON.stringify(receipt)
    yield* Effect.promise(() => jetstream.publish(receiptSubject(typeof receipt === "string" ? "broken" : receipt.destination), body))
  })

const record = (userId: string, segmentId: string, op: "add" | "remove" = "add") => ({ idKind: "cookie" as const, userId, segmentId, op, time: "2026-11-01T10:00:00Z" })

interface Explained {
  readonly segments: ReadonlyArray<{ readonly segmentId: string; readonly deliveries?: ReadonlyArray<{ destination: string; at: string; status: number }> }>
}

layer(layerTestPlatform(), { excludeTestServices: true, timeout: 60_000 })("GET /v1/profiles/{kind}/{userId}?explain=true", (it) => {
  it.effect("lists per segment the latest receipt of each destination that received it", () =>
    Effect.gen(function*() {
      const auditor = yield* createKey("auditor")
      const source = { partner: "acme", jobId: "job-1", digest: "d", line: 1 }
      const [reply] = yield* (yield* CommandBus).sendBatch([{
        commandId: "deliveries-1", correlationId: "deliveries-1", entityType: "userprofile", entityId: profileId("cookie", USER),
        action: { _tag: "Apply", records: [{ segmentId: "10", op: "add", time: "2026-11-01T10:00:00Z", source }, { segmentId: "20", op: "add", time: "2026-11-01T10:00:00Z", source }] }
      }])
      assert.strictEqual(reply!._tag, "Accepted")

      // the later receipt of dsp-a is published first: the later one still wins
      yield* publish({ destination: "dsp-a", requestId: "dsp-a.0.continuous.1.0", status: 200, at: "2026-11-01T10:00:05Z", records: [record(USER, "10")] })
      yield* publish({ destination: "dsp-a", requestId: "dsp-a.0.continuous.0.0", status: 503, at: "2026-11-01T10:00:01Z", records: [record(USER, "10"), record(OTHER, "10")] })
      yield* publish("not a receipt")
      yield* publish({ destination: "dsp-b", requestId: "dsp-b.0.continuous.0.0", status: 202, at: "2026-11-01T10:00:03Z", records: [record(OTHER, "10"), record(USER, "20")] })

      const url = `/v1/profiles/cookie/${USER}?explain=true`
      const explained = yield* eventually(
        Effect.map(request({ method: "GET", url, key: auditor.secret }), (res) => res.json() as Explained),
        (body) => (body.segments?.find((s) => s.segmentId === "20")?.deliveries ?? []).length > 0,
        "30 seconds"
      )
      assert.deepStrictEqual(explained.segments.map((s) => ({ segmentId: s.segmentId, deliveries: s.deliveries })), [
        { segmentId: "10", deliveries: [{ destination: "dsp-a", at: "2026-11-01T10:00:05Z", status: 200 }] },
        { segmentId: "20", deliveries: [{ destination: "dsp-b", at: "2026-11-01T10:00:03Z", status: 202 }] }
      ])

      // without explain, no deliveries (nor sources)
      const plain = yield* request({ method: "GET", url: `/v1/profiles/cookie/${USER}`, key: auditor.secret })
      assert.isUndefined((plain.json() as Explained).segments[0]!.deliveries)
    }))
})
