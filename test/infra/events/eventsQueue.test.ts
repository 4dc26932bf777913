/**
 * EventsQueue on a real nats-server: an app's batches taken by a device pipeline. A pipeline that stops
 * (fails, is interrupted, hands its app back) before its consumer was ever pulled from ends at once:
 * nats.js's `close()` of such a consumer waits for an iteration that never comes, and awaiting it held
 * the pipeline's scope for good (stop 24's outside attack: an app's pipeline frozen, its lease still held).
 * A batch marked by the intake as checked is taken as it is; one not marked so (by no one, or by another
 * version of the schema) is decoded, and set aside on DEADLETTERS when it does not decode.
 */
import { assert, describe, it } from "@effect/vitest"
import { headers } from "@nats-io/transport-node"
import { Effect, Fiber, Layer, Stream } from "effect"
import { checkedHeader } from "../../../domain/checked.ts"
import { EventsQueue } from "../../../domain/events/EventsQueue.ts"
import { eventBatchMark } from "../../../domain/events/SdkEvent.ts"
import { eventsSubject, StreamNames } from "../../../domain/subjects.ts"
import { layerJetStream } from "../../../infra/events/eventsQueue.ts"
import { Nats, tryNats } from "../../../infra/nats/Nats.ts"
import { streamMessages } from "../../fixtures/jetstreamContents.ts"
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

  it.live("takes a batch marked as checked as it is, decodes the others, and sets aside what does not decode", () =>
    Effect.gen(function*() {
      const queue = yield* EventsQueue
      const { jetstream } = yield* Nats
      const publish = (events: ReadonlyArray<unknown>, mark?: string, app = APP) => {
        const marked = headers()
        if (mark !== undefined) marked.set(checkedHeader, mark)
        const body = JSON.stringify({ app, receivedAt: "2026-11-30T04:00:00.000Z", events })
        return tryNats("publish", () => jetstream.publish(eventsSubject(APP), body, { headers: marked }))
      }
      const event = (seq: unknown) => ({ deviceId: "d-1", seq, time: "2026-11-30T04:00:00.000Z", type: "open" })
      yield* publish([event(0)]) // not marked, decodes
      yield* publish([event("one")], "EventBatch/0") // marked by another version of the schema: decoded, and refused
      yield* publish([event(-1)]) // not marked, refused
      yield* publish([event(2)], eventBatchMark)
      yield* publish([event(3)], eventBatchMark, "6262") // marked, but of another app than its subject's
      const taken = yield* queue.take(APP, 8).pipe(
        Effect.flatMap((groups) => Stream.runCollect(groups.pipe(Stream.flattenIterable, Stream.take(2)))),
        Effect.scoped,
        Effect.timeout("20 seconds")
      )
      assert.deepStrictEqual(taken.map((d) => d.batch.events.map((e) => e.seq)), [[0], [2]])
      const setAside = (yield* streamMessages(StreamNames.deadLetters)).filter((m) => m.subject.startsWith("deadletter.events."))
      assert.strictEqual(setAside.length, 3, "the refused ones, and the other app's, on DEADLETTERS")
    }).pipe(Effect.provide(layerJetStream().pipe(Layer.provideMerge(layerTestNats())))), { timeout: 60_000 })
})
