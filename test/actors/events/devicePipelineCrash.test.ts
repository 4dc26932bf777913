/**
 * Nothing lost, nothing counted twice, with real processes (issue 8 item 2): a platform process
 * (`api/main.ts`) is SIGKILLed while app events stream through its device pipeline; another is started
 * on the same DATA_DIR and nats-server, takes the app once the dead one's lease expires and carries
 * on from devices.db. EVENTS_CLEAN then holds every distinct (device, seq) exactly once.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import type { EventBatch, SdkEvent } from "../../../domain/events/SdkEvent.ts"
import { eventsSubject, StreamNames } from "../../../domain/subjects.ts"
import { Nats, tryNats } from "../../../infra/nats/Nats.ts"
import { cleanEventsOnStream } from "../../fixtures/appEvents.ts"
import { eventually } from "../../fixtures/http.ts"
import { streamMessages } from "../../fixtures/jetstreamContents.ts"
import { layerTestNats, TestNatsServer } from "../../fixtures/nats.ts"
import { platformEnv, startPlatformProcess, stopProcess, waitUntilReady } from "../../fixtures/platformProcess.ts"
import { tempDir } from "../../fixtures/tempDir.ts"

const ADMIN = "devices-crash-admin-0123456"
const APP = "777"
const MESSAGES = 100
const DEVICES = 200
const start = Date.parse("2026-11-28T08:00:00Z")

/** Message i: 36 new events of 36 devices, plus 4 copies (in the batch, of older batches, months old). */
const batches = (): { messages: Array<EventBatch>; distinct: Set<string> } => {
  const next = new Array<number>(DEVICES).fill(0)
  const sent: Array<SdkEvent> = []
  const distinct = new Set<string>()
  const messages: Array<EventBatch> = []
  for (let i = 0; i < MESSAGES; i++) {
    const events: Array<SdkEvent> = []
    for (let j = 0; j < 36; j++) {
      const device = (i * 36 + j) % DEVICES
      const seq = next[device]!++
      const e: SdkEvent = { deviceId: `dev-${device}`, seq, time: new Date(start + i * 60_000 + j).toISOString(), type: j % 9 === 0 ? "open" : "custom", name: "tap", dims: { platform: "ios" } }
      events.push(e)
      sent.push(e)
      distinct.add(`${e.deviceId}#${seq}`)
    }
    const old = sent[(i * 7919) % sent.length]!
    events.push(events[3]!, old, { ...old, time: new Date(start - 90 * 86_400_000).toISOString() }, sent[(i * 31) % sent.length]!)
    messages.push({ app: APP, receivedAt: new Date(start + i * 60_000).toISOString(), events })
  }
  return { messages, distinct }
}

const cleanCount = Effect.map(cleanEventsOnStream, (events) => events.length)

describe("a platform process killed while app events stream through", () => {
  it.live("the next process carries on from devices.db: every distinct event exactly once on EVENTS_CLEAN", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir("devices-crash")
      yield* Effect.gen(function*() {
        const nats = yield* TestNatsServer
        const { jetstream } = yield* Nats
        const { messages, distinct } = batches()
        // small batches: many transactions, so the kill lands between some of them
        const env = platformEnv(nats, dataDir, ADMIN, { SHARDS: "4", DEVICE_BATCH_MESSAGES: "2" })
        const first = yield* startPlatformProcess(env, dataDir)
        yield* waitUntilReady(first)

        const publisher = yield* Effect.forkChild(Effect.forEach(messages, (batch) =>
          tryNats("publish", () => jetstream.publish(eventsSubject(APP), JSON.stringify(batch))).pipe(Effect.andThen(Effect.sleep("15 millis"))), { discard: true }))
        const atKill = yield* eventually(cleanCount, (n) => n >= 600, "45 seconds")
        yield* stopProcess(first, "SIGKILL")
        assert.isBelow(atKill, distinct.size, "the pipeline was done before the kill")

        const second = yield* startPlatformProcess(env, dataDir)
        yield* waitUntilReady(second)
        yield* Fiber.join(publisher)
        yield* eventually(cleanCount, (n) => n >= distinct.size, "50 seconds")
        yield* eventually(Effect.map(streamMessages(StreamNames.events), (m) => m.length), (n) => n === 0, "30 seconds")
        const ids = (yield* cleanEventsOnStream).map((e) => `${e.deviceId}#${e.seq}`)
        yield* stopProcess(second, "SIGTERM")
        const counts = new Map<string, number>()
        ids.forEach((id) => counts.set(id, (counts.get(id) ?? 0) + 1))
        const twice = [...counts].filter(([, n]) => n > 1)
        assert.deepStrictEqual(twice.slice(0, 5), [], `${twice.length} events published more than once`)
        const missing = [...distinct].filter((id) => !counts.has(id))
        assert.deepStrictEqual(missing.slice(0, 5), [], `${missing.length} events lost`)
        assert.strictEqual(ids.length, distinct.size)
      }).pipe(Effect.provide(layerTestNats()))
    }).pipe(Effect.scoped), { timeout: 150_000 })
})
