/**
 * The EVENTS intake (infra/events/eventIntake.ts) on a real nats-server with no device pipeline: an
 * app's batches admitted together (each admitted before any was published, as requests whose bodies
 * arrive slowly are) cannot pass the app's share together, since each reserves its bytes just before
 * it is published; another app is still taken.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Result } from "effect"
import { checkEvent } from "../../../domain/events/eventChecks.ts"
import { EventIntake } from "../../../domain/events/EventIntake.ts"
import { eventsSubject, StreamNames } from "../../../domain/subjects.ts"
import * as EventIntakeJetStream from "../../../infra/events/eventIntake.ts"
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
      }))
  }
)
