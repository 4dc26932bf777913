/**
 * A destination lane's DeliveryActor on a real nats-server, sending to a real HTTP server in this
 * process that records every request (headers, body, which users were in flight): chunks published on
 * DELIVER as the packages job does reach it in order, in the destination's format, with its headers
 * and secret headers and a stable Idempotency-Key; a 5xx is retried with the same key; a 400 becomes a
 * dead letter with its attempts (the secret headers' values cut out of the partner's answer); every
 * chunk is acked once each request has a receipt or a dead letter.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { assert, layer } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { deliverLane, type LaneSettings } from "../../../actors/delivery/DeliveryActor.ts"
import { type Chunk, chunkId, type DeliveryRecord } from "../../../domain/delivery/Chunk.ts"
import * as DeliveryLedgerJetStream from "../../../infra/delivery/deliveryLedger.ts"
import * as DeliveryQueueJetStream from "../../../infra/delivery/deliveryQueue.ts"
import * as PartnerHttpUndici from "../../../infra/delivery/partnerHttp.ts"
import { layerClusterFor } from "../../../infra/nats/cluster.ts"
import { Nats, tryNats } from "../../../infra/nats/Nats.ts"
import { deliverSubject, StreamNames } from "../../../domain/subjects.ts"
import { eventually } from "../../fixtures/http.ts"
import { type StoredMessage, streamMessages } from "../../fixtures/jetstreamContents.ts"
import { layerTestNats } from "../../fixtures/nats.ts"

interface Seen {
  readonly key: string
  readonly headers: IncomingMessage["headers"]
  readonly records: ReadonlyArray<DeliveryRecord>
  readonly status: number
}

/** A partner: answers after 15 ms; `answers` scripts a key's statuses (the last repeats), 200 otherwise. */
const partnerServer = (answers: Record<string, ReadonlyArray<number>>) =>
  Effect.acquireRelease(
    Effect.promise(() => {
      const seen: Array<Seen> = []
      const inFlight = new Set<string>()
      const overlaps: Array<string> = []
      const server = createServer((req: IncomingMessage, res: ServerResponse) => {
        let text = ""
        req.on("data", (part: Buffer) => (text += part.toString()))
        req.on("end", () => {
          const key = String(req.headers["idempotency-key"])
          const records = JSON.parse(text) as Array<DeliveryRecord>
          const users = [...new Set(records.map((r) => r.userId))]
          for (const user of users) if (inFlight.has(user)) overlaps.push(`${user} in ${key}`)
          users.forEach((user) => inFlight.add(user))
          const script = answers[key] ?? [200]
          const tries = seen.filter((s) => s.key === key).length
          const status = script[Math.min(tries, script.length - 1)]!
          seen.push({ key, headers: req.headers, records, status })
          setTimeout(() => {
            users.forEach((user) => inFlight.delete(user))
            // a 400 echoes the credential it was sent, as partners' error pages often do
            res.writeHead(status, { "content-type": "text/plain" })
              .end(status === 400 ? `segment 999 unknown to us; sent ${String(req.headers.authorization)} (token ${String(req.headers.authorization).split(" ")[1]})` : "ok")
          }, 15)
        })
      })
      return new Promise<{ url: string; seen: Array<Seen>; overlaps: Array<string>; close: () => void }>((resolve) =>
        server.listen(0, "127.0.0.1", () =>
          resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/in`, seen, overlaps, close: () => server.close() })))
    }),
    (server) => Effect.sync(() => server.close())
  )

const record = (userId: string, op: "add" | "remove", i: number): DeliveryRecord => ({
  idKind: "cookie",
  userId,
  segmentId: "100",
  op,
  time: new Date(Date.UTC(2026, 10, 1, 10, 0, i)).toISOString()
})

const chunkOf = (seq: number, records: ReadonlyArray<DeliveryRecord>): Chunk =>
  ({ destination: "acme", lane: 0, packageId: "continuous", kind: "continuous", seq, records })

const publishChunk = (chunk: Chunk) =>
  Effect.gen(function*() {
    const { jetstream } = yield* Nats
    yield* tryNats("publish chunk", () => jetstream.publish(deliverSubject(chunk.destination, chunk.lane), JSON.stringify(chunk), { msgID: chunkId(chunk) }))
  })

const deliveryLayer = Layer.mergeAll(
  DeliveryQueueJetStream.layerJetStream(),
  DeliveryLedgerJetStream.layerJetStream,
  PartnerHttpUndici.layerUndici,
  layerClusterFor(4)
).pipe(Layer.provideMerge(layerTestNats()))

layer(deliveryLayer, { excludeTestServices: true, timeout: 60_000 })("a destination lane's DeliveryActor", (it) => {
  it.effect("delivers chunks in order and format, with headers and stable keys; retries 5xx, dead-letters a 400; acks each chunk once settled", () =>
    Effect.gen(function*() {
      // u1 is added in chunk 0 and removed in chunk 1; u2 twice within chunk 0 (two requests)
      const chunks = [
        chunkOf(0, [record("u1", "add", 0), record("u2", "add", 1), record("u3", "add", 2), record("u2", "remove", 3), record("u4", "add", 4)]),
        chunkOf(1, [record("u1", "remove", 5), record("u5", "add", 6), record("u6", "add", 7)])
      ]
      const partner = yield* partnerServer({
        // the first request of chunk 0 fails twice, then is taken
        "acme.0.continuous.0.0-1": [503, 502, 200],
        // the second request of chunk 1 is refused
        "acme.0.continuous.1.2": [400]
      })
      for (const chunk of chunks) yield* publishChunk(chunk)
      const settings: LaneSettings = {
        destination: "acme",
        lane: 0,
        url: partner.url,
        method: "PUT",
        headers: { "x-plain": "plain", authorization: "Bearer s3cret-value" },
        secrets: ["Bearer s3cret-value"],
        format: "json-array",
        batchSize: 2,
        ratePerSecond: 50,
        maxInFlight: 4,
        timeoutMs: 5_000,
        maxAttempts: 5
      }
      const lane = yield* deliverLane(settings, { backoff: { baseDelayMs: 20, maxDelayMs: 100 }, statusEvery: "200 millis" }).pipe(Effect.forkChild)

      // receipts of requests answered together share a message, which lists their ids in a header
      const receiptsIn = (ms: ReadonlyArray<StoredMessage>) =>
        ms.flatMap((m) => (m.body as { receipts: Array<{ requestId: string }> }).receipts.map((r) => ({ ...r, subject: m.subject, ids: m.headers["Tributary-Request-Ids"] })))
      const receipts = yield* eventually(Effect.map(streamMessages(StreamNames.receipts), receiptsIn), (rs) => rs.length === 4, "30 seconds")
      const deadLetters = yield* eventually(streamMessages(StreamNames.deliveryDeadLetters), (ms) => ms.length === 1, "30 seconds")
      yield* eventually(streamMessages(StreamNames.deliver), (ms) => ms.length === 0, "30 seconds")

      // requests, in the order first sent; keys per (chunk, records carried); the 503/502 repeated with the same key
      const firstSends = [...new Set(partner.seen.map((s) => s.key))]
      assert.deepStrictEqual(firstSends.sort(), [
        "acme.0.continuous.0.0-1", "acme.0.continuous.0.2-3", "acme.0.continuous.0.4", "acme.0.continuous.1.0-1", "acme.0.continuous.1.2"
      ])
      assert.deepStrictEqual(partner.seen.filter((s) => s.key === "acme.0.continuous.0.0-1").map((s) => s.status), [503, 502, 200])
      assert.deepStrictEqual(partner.seen.find((s) => s.key === "acme.0.continuous.0.2-3")!.records.map((r) => r.userId), ["u3", "u2"])
      // body and headers: a JSON array of up to batchSize records; plain and secret headers
      for (const s of partner.seen) {
        assert.isAtMost(s.records.length, 2)
        assert.strictEqual(s.headers["x-plain"], "plain")
        assert.strictEqual(s.headers.authorization, "Bearer s3cret-value")
        assert.strictEqual(s.headers["content-type"], "application/json")
      }
      // order: no user in two requests at once; u1's remove (chunk 1) sent after its add was taken
      assert.deepStrictEqual(partner.overlaps, [])
      const addTaken = partner.seen.findIndex((s) => s.key === "acme.0.continuous.0.0-1" && s.status === 200)
      const removeSent = partner.seen.findIndex((s) => s.key === "acme.0.continuous.1.0-1")
      assert.isAbove(removeSent, addTaken)

      // receipts: one per delivered request, with its records; the dead letter lists its attempt and the answer
      const receiptIds = receipts.map((r) => r.requestId).sort()
      assert.deepStrictEqual(receiptIds, ["acme.0.continuous.0.0-1", "acme.0.continuous.0.2-3", "acme.0.continuous.0.4", "acme.0.continuous.1.0-1"])
      assert.ok(receipts.every((r) => r.subject === "receipt.acme" && r.ids!.split(" ").includes(r.requestId)))
      const deadLetter = deadLetters[0]!.body as { id: string; records: Array<DeliveryRecord>; attempts: Array<{ status?: number; body?: string }> }
      assert.strictEqual(deadLetters[0]!.subject, "dlq.acme")
      assert.strictEqual(deadLetter.id, "acme.0.continuous.1.2")
      assert.deepStrictEqual(deadLetter.records.map((r) => r.userId), ["u6"])
      // the partner's answer without the secret it echoed: dead letters are read by auditors
      assert.deepStrictEqual(deadLetter.attempts.map((a) => [a.status, a.body]), [[400, "segment 999 unknown to us; sent [redacted] (token [redacted])"]])
      assert.notInclude(JSON.stringify(deadLetters), "s3cret-value")
      yield* Fiber.interrupt(lane)
    }))
})
