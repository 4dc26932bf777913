/**
 * The partner counts a request when it arrives, which we never see: only that it arrived after we sent
 * it and before we read its answer. A rate governor that counts send times lets the partner see more
 * than the limit in one of its windows whenever requests are held up on the way (a connection being
 * opened, a stalled event loop on either side): a burst sent at t arriving at t+400 ms shares a partner
 * window with the next second's sends. So a request counts from its send until a window after its
 * answer: a new one may start only while fewer than `limit` requests are in flight or were answered
 * within the last window. Then no window of arrivals can hold more than `limit`, whatever the delays
 * (the last sent of any `limit + 1` arrivals in one window would have seen the others counted). The
 * cost is the answer latency added to each window: a partner answering in 5 ms gets 0.5% less.
 *
 * Pure and owned by one actor, like RateGovernor (which still decides pacing, 429 pauses and AIMD).
 */

export interface ArrivalBound {
  readonly windowMs: number
  inFlight: number
  /** answer times, oldest first (they are recorded in time order) */
  readonly answers: Array<number>
  head: number
}

export const make = (windowMs = 1_000): ArrivalBound => ({ windowMs, inFlight: 0, answers: [], head: 0 })

const prune = (b: ArrivalBound, nowMs: number) => {
  while (b.head < b.answers.length && b.answers[b.head]! <= nowMs - b.windowMs) b.head++
  if (b.head > 1_024 && b.head * 2 > b.answers.length) {
    b.answers.splice(0, b.head)
    b.head = 0
  }
}

/** Requests that may still be inside a partner's window ending now. */
export const counted = (b: ArrivalBound, nowMs: number): number => {
  prune(b, nowMs)
  return b.inFlight + b.answers.length - b.head
}

/**
 * Is there room for one more request under `limit` now? When not, how long until the oldest answer
 * leaves the window (in-flight requests only leave after theirs: a quarter window when none answered yet).
 */
export const room = (b: ArrivalBound, limit: number, nowMs: number): { readonly ok: true } | { readonly ok: false; readonly waitMs: number } => {
  if (counted(b, nowMs) < Math.max(1, Math.floor(limit))) return { ok: true }
  const oldest = b.answers[b.head]
  return { ok: false, waitMs: oldest === undefined ? b.windowMs / 4 : Math.max(1, oldest + b.windowMs - nowMs) }
}

/** A request was sent (right after `room` said yes, in the same step). */
export const started = (b: ArrivalBound): void => {
  b.inFlight++
}

/** The request's answer (or its failure) came in at `nowMs`. */
export const answered = (b: ArrivalBound, nowMs: number): void => {
  b.inFlight = Math.max(0, b.inFlight - 1)
  b.answers.push(nowMs)
}
