import { assert, describe, it } from "@effect/vitest"
import { add, decode, type DedupeState, empty, encode, encodedSize, seen } from "../../../domain/events/dedupe.ts"

/** A seeded generator (mulberry32): every run checks the same cases, and a failure names its seed. */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** A device's arrivals: mostly in order, with replays, reordering, months-late copies and a few seqs that never come. */
const arrivals = (next: () => number, count: number): Array<number> => {
  const out: Array<number> = []
  for (let seq = 0; seq < count; seq++) {
    const r = next()
    if (r < 0.03) continue // never comes
    if (r < 0.1 && out.length > 0) out.splice(Math.floor(next() * out.length), 0, seq) // arrives early/late
    else out.push(seq)
    if (next() < 0.15) out.push(Math.floor(next() * (seq + 1))) // a replay of something already sent
  }
  return out
}

const invariant = (state: DedupeState) => {
  let previous = state.floor - 1
  for (const [lo, hi] of state.ranges) {
    assert.isTrue(lo > previous + 1 && hi >= lo, `ranges sorted, disjoint, not adjacent: ${JSON.stringify(state)}`)
    previous = hi
  }
}

describe("exact dedupe by sequence", () => {
  it("agrees with a Set of every seq seen, over random arrivals with replays, while no gap is given up", () => {
    for (let seed = 1; seed <= 80; seed++) {
      const next = random(seed)
      let state = empty
      const set = new Set<number>()
      for (const seq of arrivals(next, 200)) {
        assert.strictEqual(seen(state, seq), set.has(seq), `seed ${seed}, seq ${seq}`)
        const added = add(state, seq, 1_000)
        state = added.state
        set.add(seq)
        assert.strictEqual(added.givenUp, 0)
        invariant(state)
        assert.deepStrictEqual(decode(encode(state)), state)
        assert.strictEqual(encodedSize(state), encode(state).length)
      }
      for (let seq = 0; seq < 220; seq++) assert.strictEqual(seen(state, seq), set.has(seq), `seed ${seed}, final seq ${seq}`)
    }
  })

  it("stays within its bound, never reports a new event as new twice, and is exact above the given-up gaps", () => {
    for (let seed = 1; seed <= 80; seed++) {
      const next = random(seed)
      let state = empty
      const set = new Set<number>()
      const accepted = new Set<number>()
      let givenUp = 0
      for (const seq of arrivals(next, 400)) {
        const wasSeen = seen(state, seq)
        if (!wasSeen) accepted.add(seq)
        // never a false "new": whatever the bound gives up, an event seen before is always recognised
        if (set.has(seq)) assert.isTrue(wasSeen, `seed ${seed}: seq ${seq} would be counted twice`)
        // above the floor (beyond every given-up gap) the answer is exact
        if (seq >= state.floor) assert.strictEqual(wasSeen, set.has(seq))
        const added = add(state, seq, 4)
        state = added.state
        givenUp += added.givenUp
        set.add(seq)
        assert.isAtMost(state.ranges.length, 4)
        invariant(state)
      }
      // what was given up is exactly the seqs below the floor never accepted as new
      let missingBelowFloor = 0
      for (let seq = 0; seq < state.floor; seq++) if (!accepted.has(seq)) missingBelowFloor++
      assert.strictEqual(givenUp, missingBelowFloor, `seed ${seed}`)
    }
  })

  it("keeps an in-order device in one to three bytes, whatever its count", () => {
    let state = empty
    for (let seq = 0; seq < 100_000; seq++) state = add(state, seq).state
    assert.deepStrictEqual(state, { floor: 100_000, ranges: [] })
    assert.strictEqual(encode(state).length, 3)
    assert.strictEqual(encode(empty).length, 1)
    assert.isTrue(seen(state, 0) && seen(state, 99_999) && !seen(state, 100_000))
  })

  it("encodes sequences beyond 2^32", () => {
    const state = add(add(empty, 2 ** 40).state, 2 ** 40 + 5).state
    assert.deepStrictEqual(decode(encode(state)), state)
    assert.strictEqual(encodedSize(state), encode(state).length)
    assert.throws(() => decode(Uint8Array.from([0x80])))
  })
})
