/**
 * Sessions of one device (domain/events/sessions.ts), by device time, with the server-time timer of
 * the pipeline (actors/events/sessionTimer.ts) under TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Queue } from "effect"
import { TestClock } from "effect/testing"
import { sessionTicks } from "../../../actors/events/sessionTimer.ts"
import type { EventType } from "../../../domain/events/SdkEvent.ts"
import { type Ended, emptySessions, expire, type SessionsState, step } from "../../../domain/events/sessions.ts"

const options = { inactivityMs: 30 * 60_000 }
const t0 = Date.parse("2026-08-01T09:00:00Z")
const s = (seconds: number) => t0 + seconds * 1000

/** Feeds events (type, device second) at server time `now`; returns the final state, sessions ended and each event's session start. */
const feed = (events: ReadonlyArray<readonly [EventType, number]>, now = 0, from: SessionsState = emptySessions) => {
  let state = from
  const ended: Array<Ended> = []
  const sessions: Array<number | undefined> = []
  for (const [type, second] of events) {
    const stepped = step(state, { type, time: s(second), dims: { platform: "android" } }, now, options)
    state = stepped.state
    ended.push(...stepped.ended)
    sessions.push(stepped.session)
  }
  return { state, ended, sessions }
}

describe("sessions of a device", () => {
  it("keeps one session across a background of 29 s followed by a foreground", () => {
    const { ended, sessions } = feed([["open", 0], ["custom", 10], ["background", 20], ["foreground", 49], ["close", 100]])
    assert.strictEqual(ended.length, 1)
    assert.deepStrictEqual(ended[0], {
      start: s(0), end: s(100), endedBy: "close", dims: { platform: "android" },
      counts: { open: 1, custom: 1, background: 1, foreground: 1, close: 1 }
    })
    assert.deepStrictEqual(new Set(sessions), new Set([s(0)]))
  })

  it("ends the session at a background of 31 s and starts a new one at the foreground", () => {
    const { ended, sessions, state } = feed([["open", 0], ["background", 20], ["foreground", 51], ["close", 80]])
    assert.strictEqual(ended.length, 2)
    assert.deepStrictEqual([ended[0]!.start, ended[0]!.end, ended[0]!.endedBy], [s(0), s(20), "inactivity"])
    assert.deepStrictEqual(ended[0]!.counts, { open: 1, background: 1 })
    assert.deepStrictEqual([ended[1]!.start, ended[1]!.end, ended[1]!.endedBy], [s(51), s(80), "close"])
    assert.deepStrictEqual(sessions, [s(0), s(0), s(51), s(51)])
    assert.strictEqual(state.open, undefined)
  })

  it("ends a session with no close at its last event when the next event comes more than the inactivity time later", () => {
    const within = feed([["open", 0], ["custom", 60], ["custom", 60 + 29 * 60]])
    assert.strictEqual(within.ended.length, 0)
    const { ended, sessions, state } = feed([["open", 0], ["custom", 60], ["open", 60 + 31 * 60]])
    assert.strictEqual(ended.length, 1)
    assert.deepStrictEqual([ended[0]!.start, ended[0]!.end, ended[0]!.endedBy], [s(0), s(60), "inactivity"])
    assert.deepStrictEqual(sessions, [s(0), s(0), s(60 + 31 * 60)])
    assert.strictEqual(state.open?.start, s(60 + 31 * 60))
  })

  it.effect("ends a session with no close by the timer once nothing came for the inactivity time (TestClock)", () =>
    Effect.gen(function*() {
      let state = feed([["open", 0], ["custom", 30]], yield* Clock.currentTimeMillis).state
      const ended: Array<Ended> = []
      const ticks = yield* Queue.unbounded<number>()
      const timer = yield* Effect.forkChild(sessionTicks("1 minute", (now) => Queue.offer(ticks, now)))
      const drain = Effect.gen(function*() {
        for (const now of yield* Queue.clear(ticks)) {
          const expired = expire(state, now, options)
          state = expired.state
          ended.push(...expired.ended)
        }
      })
      yield* TestClock.adjust("29 minutes")
      yield* drain
      assert.strictEqual(ended.length, 0)
      assert.isDefined(state.open)
      yield* TestClock.adjust("2 minutes")
      yield* drain
      assert.strictEqual(ended.length, 1)
      assert.deepStrictEqual([ended[0]!.start, ended[0]!.end, ended[0]!.endedBy], [s(0), s(30), "reminder"])
      assert.deepStrictEqual(ended[0]!.counts, { open: 1, custom: 1 })
      assert.strictEqual(state.open, undefined)
      yield* Fiber.interrupt(timer)
    }))

  it("places a late event in the ended session its device time belongs to, without ending it again; one in no session gets none", () => {
    const first = feed([["open", 0], ["close", 100], ["open", 5000], ["close", 5100]])
    assert.strictEqual(first.ended.length, 2)
    const late = feed([["custom", 50], ["custom", 5050], ["custom", 2000], ["impression", -3600]], 0, first.state)
    assert.deepStrictEqual(late.sessions, [s(0), s(5000), undefined, undefined])
    assert.strictEqual(late.ended.length, 0)
    assert.deepStrictEqual(late.state, first.state)
  })

  it("a background counts from the first of a row of them: a second background does not restart its 30 s", () => {
    const { ended, sessions } = feed([["open", 0], ["background", 1], ["background", 20], ["foreground", 45], ["close", 60]])
    // it ends at the first background: the time in the background is not the session's
    assert.deepStrictEqual(ended.map((e) => [e.start, e.end, e.endedBy]), [[s(0), s(1), "inactivity"], [s(45), s(60), "close"]])
    assert.deepStrictEqual(sessions, [s(0), s(0), s(0), s(45), s(45)])
  })

  it("an open at the instant the previous session closed starts the next session, unless that one lasted no time", () => {
    const { ended, sessions } = feed([["open", 0], ["close", 5], ["open", 5], ["custom", 10], ["close", 20]])
    assert.deepStrictEqual(ended.map((e) => [e.start, e.end]), [[s(0), s(5)], [s(5), s(20)]])
    assert.deepStrictEqual(sessions, [s(0), s(0), s(5), s(5), s(5)])
    // a custom event at that instant is still the ended session's
    assert.deepStrictEqual(feed([["open", 0], ["close", 5], ["custom", 5]]).sessions, [s(0), s(0), s(0)])
    // a session of no length keeps its instant: a second open there lands in it (two sessions would share an id)
    const still = feed([["open", 5], ["close", 5], ["open", 5], ["close", 5]])
    assert.strictEqual(still.ended.length, 1)
    assert.deepStrictEqual(still.sessions, [s(5), s(5), s(5), s(5)])
  })

  it("counts an open within the open session's span in it: no two sessions share an id or overlap", () => {
    // stop 31's outside attack: a launch event and the open in one millisecond made two sessions with one
    // id (0 s by inactivity, then 120 s by the close), and an open again at the start two overlapping ones
    for (const events of [
      [["custom", 0], ["open", 0], ["close", 120]],
      [["open", 0], ["open", 0], ["close", 120]],
      [["open", 0], ["custom", 5], ["open", 0], ["close", 120]],
      [["open", 0], ["custom", 5], ["open", 3], ["close", 120]],
      [["open", 0], ["custom", 5], ["open", 5], ["close", 120]]
    ] as const) {
      const { ended, sessions } = feed(events)
      assert.deepStrictEqual(ended.map((e) => [e.start, e.end, e.endedBy]), [[s(0), s(120), "close"]], JSON.stringify(events))
      assert.strictEqual(ended[0]!.counts["open"], events.filter(([type]) => type === "open").length)
      assert.deepStrictEqual(new Set(sessions), new Set([s(0)]))
    }
    // one after the last event is the next launch
    const next = feed([["custom", 0], ["open", 0], ["custom", 5], ["open", 6], ["close", 120]])
    assert.deepStrictEqual(next.ended.map((e) => [e.start, e.end, e.endedBy]), [[s(0), s(5), "inactivity"], [s(6), s(120), "close"]])
  })

  it("remembers a bounded number of ended sessions", () => {
    const events: Array<readonly [EventType, number]> = []
    for (let i = 0; i < 50; i++) events.push(["open", i * 100], ["close", i * 100 + 10])
    const { state } = feed(events)
    assert.strictEqual(state.recent.length, 4)
    assert.deepStrictEqual(state.recent[3], [s(4900), s(4910)])
  })
})
