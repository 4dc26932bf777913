import { assert, describe, it } from "@effect/vitest"
import * as ArrivalBound from "../../../domain/delivery/ArrivalBound.ts"

/** A seeded random (mulberry32), so the run is the same every time. */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
}

const maxInAnyWindow = (times: ReadonlyArray<number>, windowMs: number) => {
  const sorted = [...times].sort((a, b) => a - b)
  let best = 0
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (sorted[i]! - sorted[j]! >= windowMs) j++
    best = Math.max(best, i - j + 1)
  }
  return best
}

describe("the arrival bound", () => {
  it("keeps every window of arrivals within the limit whatever the delays on the way", () => {
    const random = seeded(7)
    const limit = 20
    const bound = ArrivalBound.make(1_000)
    // requests held up on the way for up to 600 ms (arrival anywhere between send and answer)
    const inFlight: Array<{ answerAt: number }> = []
    const arrivals: Array<number> = []
    for (let now = 0; now < 20_000; now++) {
      for (let i = inFlight.length - 1; i >= 0; i--) {
        if (inFlight[i]!.answerAt <= now) {
          ArrivalBound.answered(bound, now)
          inFlight.splice(i, 1)
        }
      }
      while (ArrivalBound.room(bound, limit, now).ok) {
        ArrivalBound.started(bound)
        const latency = random() < 0.2 ? 600 * random() : 5 * random()
        arrivals.push(now + latency * random())
        inFlight.push({ answerAt: now + Math.max(1, Math.ceil(latency)) })
      }
    }
    assert.isAtMost(maxInAnyWindow(arrivals, 1_000), limit)
    // and it still sends: most of the limit over the run
    assert.isAbove(arrivals.length, 20 * 20 * 0.6)
  })

  it("answers how long until the oldest answer leaves the window", () => {
    const bound = ArrivalBound.make(1_000)
    ArrivalBound.started(bound)
    ArrivalBound.answered(bound, 100)
    assert.deepStrictEqual(ArrivalBound.room(bound, 1, 300), { ok: false, waitMs: 800 })
    assert.deepStrictEqual(ArrivalBound.room(bound, 1, 1_100), { ok: true })
  })
})
