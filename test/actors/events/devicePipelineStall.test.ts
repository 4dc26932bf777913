/**
 * A device pipeline waiting for batches that never come while its app has some on EVENTS (real
 * nats-server, real devices.db): its EVENTS consumer is deleted under it — as another process taking
 * the app for a moment does, and nats.js then retries its pulls for ever without an error. The pipeline
 * keeps its lease whatever it does, so before the watchdog the app's batches waited for as long as the
 * process lived (stop 24's outside attack: an app frozen for minutes). Now, with work and no progress
 * for DEVICE_STALL_TIMEOUT, it gives up and starts again, and loses nothing nor counts anything twice.
 */
import { assert, layer } from "@effect/vitest"
import { Effect, Metric } from "effect"
import { pipelineStalls } from "../../../actors/events/pipelineWatchdog.ts"
import { eventsConsumerName } from "../../../domain/events/EventsQueue.ts"
import type { EventBatch, SdkEvent } from "../../../domain/events/SdkEvent.ts"
import { eventsSubject, StreamNames } from "../../../domain/subjects.ts"
import { Nats, tryNats } from "../../../infra/nats/Nats.ts"
import { cleanEventsOnStream } from "../../fixtures/appEvents.ts"
import { eventually } from "../../fixtures/http.ts"
import { streamMessages } from "../../fixtures/jetstreamContents.ts"
import { layerTestPlatform } from "../../fixtures/platform.ts"

const APP = "5151"
const now = Date.parse("2026-11-30T04:00:00Z")

const publish = (events: ReadonlyArray<SdkEvent>) =>
  Effect.gen(function*() {
    const { jetstream } = yield* Nats
    const batch: EventBatch = { app: APP, receivedAt: new Date(now).toISOString(), events }
    yield* tryNats("publish", () => jetstream.publish(eventsSubject(APP), JSON.stringify(batch)))
  })

const opens = (from: number, count: number): Array<SdkEvent> =>
  Array.from({ length: count }, (_, i) => ({ deviceId: `d-${from + i}`, seq: 0, time: new Date(now + i).toISOString(), type: "open" }))

const ids = Effect.map(cleanEventsOnStream, (events) => events.filter((e) => e.app === APP).map((e) => e.deviceId).sort())

layer(layerTestPlatform({ DEVICE_STALL_TIMEOUT: "3 seconds" }), { excludeTestServices: true, timeout: 90_000 })("a stalled device pipeline", (it) => {
  it.effect("whose EVENTS consumer was deleted under it gives up and starts again: the app's batches come through, once each", () =>
    Effect.gen(function*() {
      yield* publish(opens(0, 5))
      yield* eventually(ids, (seen) => seen.length === 5, "40 seconds")
      const stallsBefore = yield* Metric.value(pipelineStalls)

      // its consumer gone: its pulls answer nothing, with no error, while the app has batches waiting
      const { manager } = yield* Nats
      yield* tryNats("delete consumer", () => manager.consumers.delete(StreamNames.events, eventsConsumerName(APP)))
      yield* publish(opens(5, 5))

      const seen = yield* eventually(ids, (all) => all.length >= 10, "40 seconds")
      assert.deepStrictEqual(seen, Array.from({ length: 10 }, (_, i) => `d-${i}`).sort())
      assert.isAbove((yield* Metric.value(pipelineStalls)).count, stallsBefore.count, "the watchdog did not give the pipeline up")
      yield* eventually(Effect.map(streamMessages(StreamNames.events), (m) => m.length), (n) => n === 0, "30 seconds")
    }))
})
