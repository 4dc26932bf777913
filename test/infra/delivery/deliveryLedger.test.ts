/**
 * The delivery ledger's receipts on a real nats-server: those asked for together (one event-loop
 * round) are stored as one RECEIPTS message per destination listing their request ids, each resolved
 * once it is stored; a new owner reads back the ids of a chunk from such messages and from single
 * receipts written before batches.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { Receipt } from "../../../domain/delivery/Receipt.ts"
import { DeliveryLedger } from "../../../domain/delivery/DeliveryLedger.ts"
import { receiptSubject, StreamNames } from "../../../domain/subjects.ts"
import * as DeliveryLedgerJetStream from "../../../infra/delivery/deliveryLedger.ts"
import { Nats, tryNats } from "../../../infra/nats/Nats.ts"
import { streamMessages } from "../../fixtures/jetstreamContents.ts"
import { layerTestNats } from "../../fixtures/nats.ts"

const receipt = (destination: string, requestId: string): Receipt => ({
  destination,
  requestId,
  status: 200,
  at: "2026-11-29T00:00:00.000Z",
  records: [{ idKind: "cookie", userId: requestId, segmentId: "1", op: "add", time: "2026-11-28T12:00:00.000Z" }]
})

const ledgerLayer = DeliveryLedgerJetStream.layerJetStream.pipe(Layer.provideMerge(layerTestNats()))

layer(ledgerLayer, { excludeTestServices: true, timeout: 60_000 })("the delivery ledger's receipts", (it) => {
  it.effect("stores the receipts of one round as one message per destination, and reads back ids from batches and single receipts", () =>
    Effect.gen(function*() {
      const ledger = yield* DeliveryLedger
      const { jetstream } = yield* Nats
      const since = Date.now()
      // written before batches: one receipt a message, its id as Nats-Msg-Id
      const old = receipt("acme", "acme.0.p.0.0")
      yield* tryNats("publish", () => jetstream.publish(receiptSubject("acme"), JSON.stringify(old), { msgID: old.requestId }))
      // one round: 40 receipts of chunk 0 and 1 of acme, 2 of another destination
      const ids = Array.from({ length: 40 }, (_, n) => `acme.0.p.${n % 2}.${n + 1}`)
      yield* Effect.all([...ids.map((id) => ledger.receipt(receipt("acme", id))), ledger.receipt(receipt("zeta", "zeta.0.p.0.0")), ledger.receipt(receipt("zeta", "zeta.0.p.0.1"))], { concurrency: "unbounded" })

      const messages = yield* streamMessages(StreamNames.receipts)
      assert.deepStrictEqual(messages.map((m) => m.subject), ["receipt.acme", "receipt.acme", "receipt.zeta"])
      const batch = messages[1]!
      const body = batch.body as { destination: string; receipts: ReadonlyArray<Omit<Receipt, "destination">> }
      assert.strictEqual(body.destination, "acme")
      assert.deepStrictEqual(body.receipts.map((r) => r.requestId), ids)
      assert.deepStrictEqual(body.receipts[0], { requestId: ids[0], status: 200, at: "2026-11-29T00:00:00.000Z", records: receipt("acme", ids[0]!).records })
      assert.strictEqual(batch.headers["Tributary-Request-Ids"], ids.join(" "))

      const chunk0 = yield* ledger.receiptsOf("acme", "acme.0.p.0.", since)
      assert.deepStrictEqual([...chunk0].sort(), ["acme.0.p.0.0", ...ids.filter((id) => id.startsWith("acme.0.p.0."))].sort())
      assert.deepStrictEqual([...(yield* ledger.receiptsOf("zeta", "zeta.0.p.0.", since))].sort(), ["zeta.0.p.0.0", "zeta.0.p.0.1"])
    }))
})
