/**
 * The EVENTS intake (infra/events/eventIntake.ts) on a real nats-server with no device pipeline: an
 * app's batches admitted together (each admitted before any was published, as requests whose bodies
 * arrive slowly are) cannot pass the app's share together, since each reserves its bytes just before
 * it is published; another app is still taken.
 */
import { assert, layer } from "@effect/vitest"
import { AckPolicy } from "@nats-io/jetstream"
import { Effect, Layer, Result } from "effect"
import { checkedHeader } from "../../../domain/checked.ts"
import { checkEvent } from "../../../domain/events/eventChecks.ts"
import { EventIntake } from "../../../domain/events/EventIntake.ts"
import { eventBatchMark } from "../../../domain/events/SdkEvent.ts"
import { eventsSubject, StreamNames } from "../../../domain/subjects.ts"
import * as EventIntakeJetStream from "../../../infra/events/eventIntake.ts"
import { Nats } from "../../../infra/nats/Nats.ts"
import { streamMessages } from "../../fixtures/jetstreamContents.ts"
import { layerTestNats } from "../../fixtures/nats.ts"

const appMaxBytes = 128 * 1024

const batch = (n: number) =>
  Array.from({ length: 40 }, (_, i) => {
    const raw = { deviceId: `d-${n}`, seq: i, time: "2026-05-01T12:00:00Z", type: "custom", name: "n", props: { note: "z".repeat(250) } }
    return Result.getOrThrow(checkEvent(raw, Date.now(), { maxEventBytes: 65_536 }))
  })

const bytesOn = (app: string) =>
  Effect.map(streamMessages(StreamNames.events), (messages) =>
    messages.filter((m) => m.subject === eventsSubject(app)).reduce((sum, m) => sum + Buffer.byteLength(JSON.stringify(m.body)), 0))

layer(EventIntakeJetStream.layer({ messageMaxBytes: 65_536, maxPending: 1_000, appMaxBytes }).pipe(Layer.provideMerge(layerTestNats())), { excludeTestServices: true, timeout: 60_000 })(
  "the EVENTS intake",
  (it) => {
    it.effect("batches admitted together reserve their bytes in turn: together they stay within the app's share", () =>
      Effect.gen(function*() {
        const intake = yield* EventIntake
        // every one admitted first: nothing is pending yet
        yield* Effect.forEach(Array.from({ length: 16 }, () => "81"), intake.admit, { discard: true })
        const outcomes = yield* Effect.forEach(
          Array.from({ length: 16 }, (_, n) => n),
          (n) => Effect.result(intake.publish({ app: "81", receivedAt: new Date().toISOString(), events: batch(n) })),
          { concurrency: "unbounded" }
        )
        const refused = outcomes.filter(Result.isFailure)
        assert.isAbove(refused.length, 0, "some are refused at publishing")
        assert.isAbove(outcomes.length - refused.length, 0, "some are taken")
        for (const failure of refused) assert.match(failure.failure.operation, /device pipeline of app 81 is behind \(about \d+ bytes/)
        assert.isAtMost(yield* bytesOn("81"), appMaxBytes + 20_000, "within the share and one batch")
        // the share is the app's: another app is taken
        assert.strictEqual(yield* intake.publish({ app: "82", receivedAt: new Date().toISOString(), events: batch(0) }), 1)
        // every batch it published says its events were checked, so the device pipeline takes them as they are
        const published = (yield* streamMessages(StreamNames.events)).filter((m) => m.subject === eventsSubject("82"))
        assert.deepStrictEqual(published.map((m) => m.headers[checkedHeader]), [eventBatchMark])
      }))
  }
)

// A small EVENTS (its blocks small too), so that an app's backlog spans several of the stream's blocks.
layer(EventIntakeJetStream.layer({ messageMaxBytes: 65_536, maxPending: 100_000, appMaxBytes: 2 * 1024 * 1024 }).pipe(Layer.provideMerge(layerTestNats({ eventsMaxBytes: 16 * 1024 * 1024 }))), { excludeTestServices: true, timeout: 60_000 })(
  "the EVENTS intake, an app's backlog read from the stream",
  (it) => {
    it.effect("refuses an app whose batches on EVENTS pass its share once the first ones are consumed, as they span the stream's blocks", () =>
      Effect.gen(function*() {
        // nats-server 2.9's stream info filtered by a literal subject answered no count for it once the
        // stream's first messages were gone and the rest spanned blocks: the app's backlog read as 0, and
        // one SDK key filled EVENTS, turning every other app away (stop 26's outside attack: 1 GB of one
        // app's batches, its share 256 MiB).
        const { jetstream, manager } = yield* Nats
        const body = "x".repeat(60_000)
        const publish = (count: number) => Effect.promise(async () => {
          for (let i = 0; i < count; i++) await jetstream.publish(eventsSubject("93"), body)
        })
        yield* Effect.promise(() => manager.consumers.add(StreamNames.events, { durable_name: "t93", filter_subject: eventsSubject("93"), ack_policy: AckPolicy.Explicit }))
        const consumer = yield* Effect.promise(() => jetstream.consumers.get(StreamNames.events, "t93"))
        /** the app's pipeline takes `count` batches (a work queue: they leave the stream) */
        const take = (count: number) => Effect.promise(async () => {
          const taken = await consumer.fetch({ max_messages: count, expires: 5_000 })
          for await (const msg of taken) await msg.ackAck()
        })
        yield* publish(200)
        yield* take(190)
        yield* publish(200)
        const refused = yield* Effect.result((yield* EventIntake).admit("93"))
        assert.isTrue(Result.isFailure(refused), "~12 MB of the app's batches wait, against a share of 2 MiB")
        if (Result.isFailure(refused)) assert.match(refused.failure.operation, /device pipeline of app 93 is behind/)
        // another app is taken
        yield* (yield* EventIntake).admit("94")
      }))
  }
)

// Shares that alone would let one app fill EVENTS (as four apps of a quarter each can together).
layer(EventIntakeJetStream.layer({ messageMaxBytes: 65_536, maxPending: 100_000, appMaxBytes: 64 * 1024 * 1024 }).pipe(Layer.provideMerge(layerTestNats({ eventsMaxBytes: 16 * 1024 * 1024 }))), { excludeTestServices: true, timeout: 60_000 })(
  "the EVENTS intake, its last quarter",
  (it) => {
    it.effect("keeps the last quarter of EVENTS for apps that are not behind: an app with a backlog is refused there, another app is taken", () =>
      Effect.gen(function*() {
        // Before (the re-attack of stop 26), four apps flooding at once, each within its quarter, filled
        // EVENTS, and a quiet app got 503 "EVENTS is full" for a fifth of its batches.
        const { jetstream } = yield* Nats
        const body = "x".repeat(60_000)
        yield* Effect.promise(async () => {
          for (let i = 0; i < 220; i++) await jetstream.publish(eventsSubject("95"), body) // ~13 MB: past three quarters of 16 MiB
        })
        const intake = yield* EventIntake
        const refused = yield* Effect.result(intake.admit("95"))
        assert.isTrue(Result.isFailure(refused), "an app with ~13 MB waiting, EVENTS three quarters full")
        if (Result.isFailure(refused)) assert.match(refused.failure.operation, /app 95 is behind .* kept for apps that are not behind/)
        yield* intake.admit("96")
        assert.strictEqual(yield* intake.publish({ app: "96", receivedAt: new Date().toISOString(), events: batch(0) }), 1)
      }))
  }
)
