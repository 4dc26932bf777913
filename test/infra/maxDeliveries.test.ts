/**
 * A command delivered `maxDeliver` times without an answer: on nats-server 2.9 its consumer stops
 * delivering it but the work queue keeps it; the bus follows the MAX_DELIVERIES advisory, moves it to
 * DEADLETTERS, answers its sender and deletes it from CMD.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Fiber, Layer, Stream } from "effect"
import { CommandBus } from "../../domain/CommandBus.ts"
import { DeadLetters } from "../../domain/DeadLetters.ts"
import { StreamNames } from "../../domain/subjects.ts"
import { layerJetStream } from "../../infra/nats/commandBus.ts"
import * as DeadLettersJetStream from "../../infra/nats/deadLetters.ts"
import { Nats, tryNats } from "../../infra/nats/Nats.ts"
import { eventually } from "../fixtures/http.ts"
import { layerTestNats } from "../fixtures/nats.ts"

const services = Layer.mergeAll(
  layerJetStream({ shards: 1, maxDeliver: 2, redeliverAfter: "1 second" }),
  DeadLettersJetStream.layerJetStream
).pipe(Layer.provideMerge(layerTestNats()))

layer(services, { excludeTestServices: true, timeout: 120_000 })("max deliveries", (it) => {
  describe("a command never answered", () => {
    it.effect("is dead-lettered after maxDeliver deliveries, its sender answered Failed, and removed from CMD", () =>
      Effect.gen(function*() {
        const bus = yield* CommandBus
        const { manager } = yield* Nats
        const commands = yield* bus.shard(0)
        // The holder hands every command back unanswered, as an actor that keeps giving up would.
        let deliveries = 0
        yield* commands.pipe(
          Stream.runForEach((incoming) => {
            deliveries++
            return "batch" in incoming ? Effect.void : incoming.retryLater(0)
          }),
          Effect.forkScoped
        )
        const sent = yield* Effect.forkChild(bus.send({
          commandId: "never-answered",
          correlationId: "t",
          entityType: "advertiser",
          entityId: "9001",
          action: { _tag: "Put", fields: { name: "x" } }
        }, { timeout: "90 seconds" }))

        const page = yield* eventually(
          DeadLetters.use((d) => d.list({ limit: 100 })),
          (p) => p.deadLetters.some((letter) => letter.reason === "max-deliveries"),
          "60 seconds"
        )
        const letter = page.deadLetters.find((l) => l.reason === "max-deliveries")!
        assert.deepInclude(letter, { stream: "CMD", subject: "cmd.advertiser.0.9001", deliveries: 2 })
        assert.include(letter.payload, "never-answered")

        const reply = yield* Fiber.join(sent)
        assert.strictEqual(reply._tag, "Failed")
        assert.match(reply._tag === "Failed" ? reply.message : "", /max-deliveries/)
        yield* eventually(tryNats("info", () => manager.streams.info(StreamNames.commands)), (info) => info.state.messages === 0)
        assert.strictEqual(deliveries, 2)
      }))
  })
})
