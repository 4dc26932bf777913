/**
 * Exact dedupe of one device's events by sequence number (issue 8 item 2), in bounded state.
 *
 * The SDK numbers a device's events 0, 1, 2, … so the state is `floor` (every seq below it was seen:
 * the highest contiguous sequence + 1) plus the ranges seen above it, sorted, disjoint and never
 * adjacent (a range that touches another is merged; one that reaches `floor` is absorbed into it).
 * A device that sends in order keeps no range at all: its state is one varint.
 *
 * The bound: at most `maxRanges` ranges (default 8). When a new range would make one more, the oldest
 * gap (between `floor` and the first range) is given up as "never coming": `floor` moves past the first
 * range and the gap's sequences count as seen. `add` reports how many were given up, so the pipeline
 * counts them. The trade-off, honestly: exactness holds for every sequence above the given-up gaps; an
 * event of a given-up gap that does arrive later (after 8 newer gaps opened) is dropped as a duplicate.
 * It never counts an event twice. With no gap given up, the answer is exact whatever the delay — a
 * copy arriving months later is still recognised, because nothing here depends on time.
 */

export interface DedupeState {
  /** every seq < floor was seen */
  readonly floor: number
  /** inclusive [lo, hi] ranges seen above floor: sorted, disjoint, non-adjacent, lo > floor */
  readonly ranges: ReadonlyArray<readonly [number, number]>
}

export const empty: DedupeState = { floor: 0, ranges: [] }

export const defaultMaxRanges = 8

/** Whether `seq` was seen before. */
export const seen = (state: DedupeState, seq: number): boolean => {
  if (seq < state.floor) return true
  for (const [lo, hi] of state.ranges) {
    if (seq < lo) return false
    if (seq <= hi) return true
  }
  return false
}

export interface Added {
  readonly state: DedupeState
  /** sequences given up as never coming to keep the state bounded (0 almost always) */
  readonly givenUp: number
}

/** Records `seq` as seen (unchanged when it was). */
export const add = (state: DedupeState, seq: number, maxRanges = defaultMaxRanges): Added => {
  if (seen(state, seq)) return { state, givenUp: 0 }
  const ranges: Array<readonly [number, number]> = []
  let placed = false
  for (const range of state.ranges) {
    if (!placed && seq < range[0]) {
      ranges.push([seq, seq])
      placed = true
    }
    ranges.push(range)
  }
  if (!placed) ranges.push([seq, seq])
  // merge neighbours that touch
  const merged: Array<readonly [number, number]> = []
  for (const range of ranges) {
    const last = merged[merged.length - 1]
    if (last !== undefined && range[0] <= last[1] + 1) merged[merged.length - 1] = [last[0], Math.max(last[1], range[1])]
    else merged.push(range)
  }
  let floor = state.floor
  let givenUp = 0
  while (merged.length > 0 && merged[0]![0] <= floor) floor = merged.shift()![1] + 1
  while (merged.length > maxRanges) {
    const first = merged.shift()!
    givenUp += first[0] - floor
    floor = first[1] + 1
  }
  return { state: { floor, ranges: merged }, givenUp }
}

// --- compact binary encoding: varint(floor), then per range varint(lo - previous end), varint(hi - lo)

const pushVarint = (out: Array<number>, value: number) => {
  let v = value
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80)
    v = Math.floor(v / 0x80)
  }
  out.push(v)
}

/** The state as a few bytes (1 to 3 for a device with no gap). */
export const encode = (state: DedupeState): Uint8Array => {
  const out: Array<number> = []
  pushVarint(out, state.floor)
  let previous = state.floor
  for (const [lo, hi] of state.ranges) {
    pushVarint(out, lo - previous)
    pushVarint(out, hi - lo)
    previous = hi
  }
  return Uint8Array.from(out)
}

const varintSize = (value: number) => {
  let size = 1
  for (let v = value; v >= 0x80; v = Math.floor(v / 0x80)) size++
  return size
}

/** `encode(state).length`, without encoding it (the device cache sizes every state it keeps). */
export const encodedSize = (state: DedupeState): number => {
  let size = varintSize(state.floor)
  let previous = state.floor
  for (const [lo, hi] of state.ranges) {
    size += varintSize(lo - previous) + varintSize(hi - lo)
    previous = hi
  }
  return size
}

/** The state `encode` wrote; throws on truncated bytes (a corrupt row must not pass for an empty state). */
export const decode = (bytes: Uint8Array): DedupeState => {
  let i = 0
  const read = () => {
    let value = 0
    let scale = 1
    for (;;) {
      if (i >= bytes.length) throw new Error("dedupe state: truncated varint")
      const b = bytes[i++]!
      value += (b & 0x7f) * scale
      if (b < 0x80) return value
      scale *= 0x80
    }
  }
  const floor = read()
  const ranges: Array<readonly [number, number]> = []
  let previous = floor
  while (i < bytes.length) {
    const lo = previous + read()
    const hi = lo + read()
    ranges.push([lo, hi])
    previous = hi
  }
  return { floor, ranges }
}
