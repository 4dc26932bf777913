/**
 * What EVENTS_CLEAN's message shape costs on its own (each message with `Nats-Msg-Id` and
 * `Tributary-Outbox-Id`, acknowledged, stored, mirrored into READERS), apart from the rest of the
 * app-events pipeline (not part of `npm run bench`): a nats-server with the platform's configuration and
 * topology, BENCH_CLEAN_EVENTS clean events (default 220,000, the 200,000-event app bench with its
 * replays) published through the device outbox's publisher (infra/events/cleanPublisher.ts) in rounds
 * of 2,000 messages, while a pull consumer with ack-all takes them as the rollups' does — once one event
 * a message (the shape before stop 18), once as full CleanBatches. Prints CPU µs per event of nats-server
 * and of this process (publishing, acknowledgements, consuming): the floor each shape puts under the
 * app-events figure, whatever the pipeline does.
 *
 *   node bench/cleanStreamCost.ts
 */
import { AckPolicy, DeliverPolicy } from "@nats-io/jetstream"
import { Effect, Layer } from "effect"
import { cleanBatchBodies, cleanBatchMaxChars } from "../domain/events/CleanEvent.ts"
import { CleanPublisher } from "../domain/events/CleanOutbox.ts"
import { allCleanEvents, StreamNames } from "../domain/subjects.ts"
import * as CleanPublisherJetStream from "../infra/events/cleanPublisher.ts"
import { Nats, tryNats } from "../infra/nats/Nats.ts"
import { cleanEvent } from "../test/fixtures/appEvents.ts"
import { layerTestNats, TestNatsServer } from "../test/fixtures/nats.ts"
import { cpuSeconds } from "./cpuTime.ts"
import { round2 } from "./stats.ts"

const events = Number(process.env.BENCH_CLEAN_EVENTS ?? 220_000)
/** messages a publishing round, and per acknowledgement of the consumer */
const round = 2_000
const app = "31337"


/** `events` clean events through the publisher and a consumer, `perMessage` to a message (1: the shape before CleanBatch). */
const measure = (perMessage: number) =>
  Effect.gen(function*() {
    const { pid } = yield* TestNatsServer
    const { jetstream, manager } = yield* Nats
    const publisher = yield* CleanPublisher
    const body = perMessage === 1 ? event : cleanBatchBodies(app, Array.from({ length: perMessage }, () => event), Infinity)[0]!
    const messages = Math.ceil(events / perMessage)
    const durable = `cost-${perMessage}`
    const first = (yield* tryNats("info", () => manager.streams.info(StreamNames.eventsClean))).state.last_seq + 1
    yield* tryNats("consumer", () => manager.consumers.add(StreamNames.eventsClean, { durable_name: durable, filter_subject: allCleanEvents, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: first, ack_policy: AckPolicy.All, max_ack_pending: round * 4 }))
    const consumer = yield* tryNats("consumer", () => jetstream.consumers.get(StreamNames.eventsClean, durable))
    const serverBefore = cpuSeconds(pid)
    const before = process.cpuUsage()
    const started = performance.now()
    const consuming = tryNats("consume", async () => {
      const pulled = await consumer.consume({ max_messages: Math.min(round * 2, Math.max(64, round * 2 / perMessage)) })
      let taken = 0
      for await (const msg of pulled) {
        msg.string()
        if (++taken % round === 0 || taken === messages) msg.ack()
        if (taken === messages) break
      }
    })
    const publishing = Effect.gen(function*() {
      for (let next = 0; next < messages; next += round) {
        const rows = Array.from({ length: Math.min(round, messages - next) }, () => ({ id: ++outboxId, kind: "clean" as const, body }))
        const acked = yield* publisher.publish(app, rows)
        if (acked.length !== rows.length) return yield* Effect.die(new Error(`${rows.length - acked.length} publishes not acknowledged`))
      }
    })
    yield* Effect.all([publishing, consuming], { concurrency: 2 })
    const seconds = (performance.now() - started) / 1000
    const cpu = process.cpuUsage(before)
    return {
      eventsPerMessage: perMessage,
      messages,
      seconds: round2(seconds),
      eventsPerSecond: Math.round(events / seconds),
      natsServerCpuMicrosPerEvent: round2(((cpuSeconds(pid) - serverBefore) * 1e6) / events),
      clientCpuMicrosPerEvent: round2((cpu.user + cpu.system) / events)
    }
  })

let outboxId = 0
const event = JSON.stringify({
  ...cleanEvent(app, "dev-12345", 7, "2026-11-29T10:00:00.000Z", { type: "custom", name: "level", props: { score: 3 }, dims: { platform: "ios", country: "fr", model: "m3", publisher: "Bench Media", category: "games" } }),
  sessionId: "dev-12345@1764410400000"
})
/** As many events as a CleanBatch holds at most (cleanBatchMaxChars). */
const perBatch = Math.floor(cleanBatchMaxChars / (event.length + 1))

const run = Effect.all([measure(1), measure(perBatch)])

const result = await Effect.runPromise(Effect.scoped(run).pipe(
  Effect.provide(CleanPublisherJetStream.layerJetStream.pipe(Layer.provideMerge(layerTestNats())))
))
console.log(JSON.stringify(result, null, 2))
process.exit(0)
