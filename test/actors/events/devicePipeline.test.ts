/**
 * The device pipeline on a running platform (real nats-server, real devices.db): batches published
 * on EVENTS as the intake does come out on EVENTS_CLEAN once per (device, seq) — replays in the same
 * batch, in later batches and with device times three months old are dropped — and an open … close
 * comes out as one SessionEnded on SESSIONS; events and sessions carry the app's metadata and an ad
 * event its campaign's advertiser.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import type { SessionEnded } from "../../../domain/events/CleanEvent.ts"
import { DeviceStore } from "../../../domain/events/DeviceStore.ts"
import type { EventBatch, SdkEvent } from "../../../domain/events/SdkEvent.ts"
import { eventsSubject, snapshotSubject, StreamNames } from "../../../domain/subjects.ts"
import { Nats, tryNats } from "../../../infra/nats/Nats.ts"
import { cleanEventsOnStream } from "../../fixtures/appEvents.ts"
import { eventually, request } from "../../fixtures/http.ts"
import { lastOnSubject, streamMessages } from "../../fixtures/jetstreamContents.ts"
import { layerTestPlatform } from "../../fixtures/platform.ts"

const APP = "4242"
const APP2 = "4343"
const now = Date.parse("2026-11-28T12:00:00Z")
const at = (ms: number) => new Date(ms).toISOString()
const threeMonthsAgo = now - 92 * 86_400_000

const event = (deviceId: string, seq: number, time: number, type: SdkEvent["type"] = "custom"): SdkEvent => ({
  deviceId,
  seq,
  time: at(time),
  type,
  ...(type === "custom" ? { name: "level_up", props: { level: seq } } : {}),
  dims: { platform: "ios", country: "FR" }
})

const publish = (events: ReadonlyArray<SdkEvent>, app = APP) =>
  Effect.gen(function*() {
    const { jetstream } = yield* Nats
    const batch: EventBatch = { app, receivedAt: at(now), events }
    yield* tryNats("publish", () => jetstream.publish(eventsSubject(app), JSON.stringify(batch)))
  })

/** Creates an entity through the API and waits for its snapshot (what the metadata cache reads). */
const entity = (type: string, id: string, body: unknown) =>
  Effect.gen(function*() {
    assert.strictEqual((yield* request({ method: "PUT", url: `/v1/entities/${type}/${id}`, body })).statusCode, 201)
    yield* eventually(lastOnSubject(StreamNames.snapshots, snapshotSubject(type, id)), (m) => m !== undefined, "20 seconds")
  })

const clean = cleanEventsOnStream
const sessions = Effect.map(streamMessages(StreamNames.sessions), (messages) => messages.map((m) => m.body as SessionEnded))

// A short inactivity time, so the timer (server time) ends a session within the test.
layer(layerTestPlatform({ SESSION_INACTIVITY: "3 seconds", SESSION_CHECK_INTERVAL: "500 millis" }), { excludeTestServices: true, timeout: 60_000 })("the device pipeline", (it) => {
  it.effect("counts every (device, seq) once on EVENTS_CLEAN: replays in a batch, across batches and three months late are dropped", () =>
    Effect.gen(function*() {
      const distinct = new Set<string>()
      const send = (events: Array<SdkEvent>) => {
        events.forEach((e) => distinct.add(`${e.deviceId}#${e.seq}`))
        return publish(events)
      }
      // batch 1: three devices, seq 0..9, with copies inside the batch
      const first = ["a", "b", "c"].flatMap((d) => Array.from({ length: 10 }, (_, seq) => event(d, seq, now - 60_000 + seq * 1000)))
      yield* send([...first, first[3]!, first[12]!, first[3]!])
      // batch 2: copies of batch 1 (reordered) and new seqs 10..14, one seq missing (never comes: 15)
      const second = ["a", "b", "c"].flatMap((d) => Array.from({ length: 5 }, (_, i) => event(d, 10 + i, now + i * 1000)))
      yield* send([...first.slice(0, 8).reverse(), ...second, event("a", 16, now + 10_000)])
      // batch 3: a device back after three months: copies of old seqs with old times, and new old events
      const old = Array.from({ length: 6 }, (_, seq) => event("old", seq, threeMonthsAgo + seq * 1000))
      yield* send(old)
      yield* send([...old.slice(0, 4), event("old", 6, threeMonthsAgo + 7_000), event("a", 2, threeMonthsAgo), event("b", 0, threeMonthsAgo)])
      // batch 4: the same again, much later
      yield* send([...first, ...second, ...old])

      const seen = yield* eventually(clean, (events) => events.filter((e) => e.app === APP).length >= distinct.size, "40 seconds")
      // every batch consumed (EVENTS is a work queue: acknowledged batches are gone) …
      yield* eventually(Effect.map(streamMessages(StreamNames.events), (m) => m.length), (n) => n === 0, "40 seconds")
      const ids = (yield* clean).filter((e) => e.app === APP).map((e) => `${e.deviceId}#${e.seq}`)
      // … and each distinct event is there exactly once
      assert.strictEqual(ids.length, distinct.size, `clean events: ${ids.length}, distinct: ${distinct.size}`)
      assert.deepStrictEqual(new Set(ids), distinct)
      assert.isAtLeast(seen.length, distinct.size)
      // the first copy is the one kept: the three-month-old copy of a#2 did not replace its time
      const a2 = (yield* clean).find((e) => e.deviceId === "a" && e.seq === 2)!
      assert.strictEqual(a2.time, at(now - 60_000 + 2_000))
      assert.strictEqual(a2.dims.country, "FR")
      assert.strictEqual(a2.receivedAt, at(now))
      // published rows leave devices.db's outbox (deleted by a later commit, or by the publisher once idle)
      const store = yield* DeviceStore
      yield* eventually(store.outbox(APP, 0, 10, Infinity), (rows) => rows.length === 0, "20 seconds")
    }))

  it.effect("turns an open … close into one SessionEnded on SESSIONS, its events carrying the session id, all enriched", () =>
    Effect.gen(function*() {
      yield* entity("app", APP2, { name: "Puzzle Go", publisher: "Acme Games", category: "puzzle" })
      yield* entity("advertiser", "90", { name: "Soda Co" })
      yield* entity("campaign", "91", { advertiserId: "90", name: "Summer" })
      const t0 = now + 3_600_000
      yield* publish([
        event("s1", 0, t0, "open"),
        { ...event("s1", 1, t0 + 1_000, "impression"), campaignId: "91", creativeId: "cr-1" },
        event("s1", 2, t0 + 2_000, "background"),
        event("s1", 3, t0 + 4_000, "foreground"),
        event("s1", 4, t0 + 6_000, "close")
      ], APP2)
      const ended = yield* eventually(sessions, (all) => all.some((s) => s.deviceId === "s1"), "40 seconds")
      const session = ended.find((s) => s.deviceId === "s1")!
      assert.strictEqual(session.app, APP2)
      assert.strictEqual(session.dims.publisher, "Acme Games")
      assert.strictEqual(session.dims.category, "puzzle")
      assert.strictEqual(session.start, at(t0))
      assert.strictEqual(session.durationSeconds, 6)
      assert.strictEqual(session.endedBy, "close")
      assert.deepStrictEqual(session.events, { open: 1, impression: 1, background: 1, foreground: 1, close: 1 })
      assert.strictEqual(session.dims.platform, "ios")
      const events = (yield* eventually(clean, (all) => all.filter((e) => e.deviceId === "s1").length === 5, "40 seconds")).filter((e) => e.deviceId === "s1")
      assert.deepStrictEqual(new Set(events.map((e) => e.sessionId)), new Set([session.sessionId]))
      for (const e of events) {
        assert.strictEqual(e.appName, "Puzzle Go")
        assert.deepStrictEqual([e.dims.publisher, e.dims.category, e.dims.platform], ["Acme Games", "puzzle", "ios"])
        assert.strictEqual(e.dims.advertiserId, e.type === "impression" ? "90" : undefined)
      }
    }))

  it.effect("ends a session with no close by the timer once nothing came for the inactivity time", () =>
    Effect.gen(function*() {
      yield* publish([event("r1", 0, now, "open"), event("r1", 1, now + 1_000, "custom")])
      const ended = yield* eventually(sessions, (all) => all.some((s) => s.deviceId === "r1"), "40 seconds")
      const session = ended.find((s) => s.deviceId === "r1")!
      assert.strictEqual(session.endedBy, "reminder")
      assert.strictEqual(session.durationSeconds, 1)
      assert.deepStrictEqual(session.events, { open: 1, custom: 1 })
    }))

  it.effect("a pipeline another claimed the app from (paused past its lease elsewhere) commits nothing more; started again, it loses nothing", () =>
    Effect.gen(function*() {
      const app = "4444"
      const ids = (events: ReadonlyArray<{ readonly app: string; readonly deviceId: string; readonly seq: number }>) =>
        events.filter((e) => e.app === app).map((e) => `${e.deviceId}#${e.seq}`).sort()
      yield* publish([event("f1", 0, now), event("f1", 1, now + 1_000)], app)
      yield* eventually(clean, (all) => ids(all).length === 2, "40 seconds")
      // another process claims the app: the running pipeline's next commit is refused, and it starts again
      const store = yield* DeviceStore
      yield* store.claim(app)
      yield* publish([event("f1", 1, now + 1_000), event("f1", 2, now + 2_000), event("f2", 0, now)], app)
      yield* eventually(clean, (all) => ids(all).length >= 4, "40 seconds")
      yield* eventually(Effect.map(streamMessages(StreamNames.events), (m) => m.length), (n) => n === 0, "40 seconds")
      assert.deepStrictEqual(ids(yield* clean), ["f1#0", "f1#1", "f1#2", "f2#0"])
    }))
})
