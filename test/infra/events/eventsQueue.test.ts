/**
 * EventsQueue on a real nats-server: an app's batches taken by a device pipeline. A pipeline that stops
 * (fails, is interrupted, hands its app back) before its consumer was ever pulled from ends at once:
 * nats.js's `close()` of such a consumer waits for an iteration that never comes, and awaiting it held
 * the pipeline's scope for good (stop 24's outside attack: an app's pipeline frozen, its lease still held).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { EventsQueue } from "../../../domain/events/EventsQueue.ts"
import { eventsSubject } from "../../../domain/subjects.ts"
import { layerJetStream } from "../../../infra/events/eventsQueue.ts"
import { Nats, tryNats } from "../../../infra/nats/Nats.ts"
import { layerTestNats } from "../../fixtures/nats.ts"

const APP = "6161"
const batch = JSON.stringify({ app: APP, receivedAt: "2026-11-30T04:00:00.000Z", events: [{ deviceId: "d-1", seq: 0, time: "2026-11-30T04:00:00.000Z", type: "open" }] })

describe("EventsQueue on JetStream", () => {
  it.live("a take whose scope ends before its batches were ever pulled ends within seconds", () =>
    Effect.gen(function*() {
      const queue = yield* EventsQueue
      const { jetstream } = yield* Nats
      yield* tryNats("publish", () => jetstream.publish(eventsSubject(APP), batch))
      // nothing pulled: the pipeline fails (or is interrupted) right after taking its app
      // (its scope closes in the same step as the take, before the stream's fiber first pulls)
      const take = queue.take(APP, 8).pipe(Effect.andThen(Effect.fail("failed right after the take")), Effect.scoped)
      // detached: a finalizer that hangs cannot be interrupted, so only waiting for it can time out
      const taking = yield* Effect.forkDetach(take)
      const closed = yield* Fiber.await(taking).pipe(Effect.timeoutOption("5 seconds"))
      assert.isTrue(closed._tag === "Some", "the take's scope did not close: its consumer's close waits for an iteration")
    }).pipe(Effect.provide(layerJetStream().pipe(Layer.provideMerge(layerTestNats())))), { timeout: 30_000 })
})
