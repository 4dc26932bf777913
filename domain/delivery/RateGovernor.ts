/**
 * A destination's rate governor (issue 9): never more requests than the limit in ANY one-second
 * window, sliding, as the partner counts them. A token bucket that may spend a full second's tokens
 * at once is too loose (a full bucket plus a second's refill puts up to twice the limit in one
 * window); this remembers the start times of the requests of the last window instead — a ring of at
 * most `limit` timestamps — and lets a request start at `t` only if fewer than `limit` started in
 * `(t - window, t]`; otherwise it answers how long to wait (until the oldest one leaves the window).
 *
 * AIMD on top: the allowed rate starts at the configured one; a 429 multiplies it by
 * `decreaseFactor` (at most once per window, since the requests in flight answer 429 together; never
 * below `floorPerSecond`) and pauses sending until its `Retry-After` (bounded by `maxPauseMs`); each
 * full second without a 429 after that adds `increaseStep × configured` back, up to the configured rate.
 * An allowed rate below 1/s keeps one request per window and stretches the window (0.5/s: one per 2 s).
 *
 * Pacing (optional, `paceAheadMs`): the window's requests are also spread evenly over it, a request
 * starting at most `paceAheadMs` ahead of the even pace (a virtual-schedule check: each start moves
 * the schedule on by `window / limit`). Bursts of a full window's worth make the partner answer them
 * all late together, and an answer's lateness is lost to each window (domain/delivery/ArrivalBound.ts);
 * spread out, each answers in a few ms. The sliding window still bounds every window.
 *
 * Pure and deterministic: time comes in as `nowMs`, nothing is read or written outside the state. The
 * state is a small mutable record owned by one actor: copying a ring of 15,000 timestamps for every
 * request would cost more than the request itself.
 */

export interface GovernorOptions {
  /** the partner's window; a few ms more absorbs the jitter between our send and its arrival clock */
  readonly windowMs: number
  readonly decreaseFactor: number
  readonly floorPerSecond: number
  /** fraction of the configured rate added back per second without 429 */
  readonly increaseStep: number
  /** the pause after a 429 without `Retry-After` */
  readonly defaultPauseMs: number
  /** the longest `Retry-After` honoured */
  readonly maxPauseMs: number
  /** when set, requests follow an even pace over the window, at most this far ahead of it; unset: bursts allowed */
  readonly paceAheadMs?: number | undefined
}

export const defaultGovernorOptions: GovernorOptions = {
  windowMs: 1000,
  decreaseFactor: 0.7,
  floorPerSecond: 1,
  increaseStep: 0.05,
  defaultPauseMs: 1000,
  maxPauseMs: 3_600_000
}

export interface RateGovernor {
  readonly configured: number
  readonly options: GovernorOptions
  /** start times of the most recent requests, oldest at `head`; capacity = ceil(configured) */
  readonly ring: Float64Array
  head: number
  count: number
  /** the AIMD rate, requests per second */
  allowedRate: number
  /** no request starts before this (a 429's Retry-After) */
  pausedUntil: number
  /** additive steps are counted from here (the last decrease's pause end, or the last step) */
  climbFrom: number
  lastDecreaseAt: number
  /** pacing: when the next request is due on the even schedule */
  paceAt: number
}

export type Admission = { readonly ok: true } | { readonly ok: false; readonly waitMs: number }

const admitted: Admission = { ok: true }

/** A governor for `limitPerSecond` (> 0), e.g. a destination's `ratePerSecond` or an owner's `shareOf` it. */
export const make = (limitPerSecond: number, options: Partial<GovernorOptions> = {}): RateGovernor => {
  if (!(limitPerSecond > 0) || !Number.isFinite(limitPerSecond)) {
    throw new RangeError(`rate limit must be a positive number, got ${limitPerSecond}`)
  }
  return {
    configured: limitPerSecond,
    options: { ...defaultGovernorOptions, ...options },
    ring: new Float64Array(Math.max(1, Math.ceil(limitPerSecond))),
    head: 0,
    count: 0,
    allowedRate: limitPerSecond,
    pausedUntil: Number.NEGATIVE_INFINITY,
    climbFrom: Number.NEGATIVE_INFINITY,
    lastDecreaseAt: Number.NEGATIVE_INFINITY,
    paceAt: Number.NEGATIVE_INFINITY
  }
}

/** Requests per window at the current allowed rate, and that window's length. */
const windowOf = (g: RateGovernor): { readonly limit: number; readonly windowMs: number } =>
  g.allowedRate >= 1
    ? { limit: Math.floor(g.allowedRate), windowMs: g.options.windowMs }
    : { limit: 1, windowMs: g.options.windowMs / g.allowedRate }

const at = (g: RateGovernor, i: number): number => g.ring[(g.head + i) % g.ring.length]!

/** Drops the start times that left every window still to come. */
const prune = (g: RateGovernor, nowMs: number, windowMs: number) => {
  while (g.count > 0 && at(g, 0) <= nowMs - windowMs) {
    g.head = (g.head + 1) % g.ring.length
    g.count--
  }
}

/** Applies the additive steps earned since `climbFrom`. */
const climb = (g: RateGovernor, nowMs: number) => {
  if (g.allowedRate >= g.configured || nowMs < g.climbFrom) return
  const steps = Math.floor((nowMs - g.climbFrom) / 1000)
  if (steps <= 0) return
  g.allowedRate = Math.min(g.configured, g.allowedRate + steps * g.options.increaseStep * g.configured)
  g.climbFrom += steps * 1000
}

/**
 * May a request start at `nowMs`? When it may, it is counted as started (call it right before
 * sending); when not, `waitMs` is how long until it may (> 0).
 */
export const acquire = (g: RateGovernor, nowMs: number): Admission => {
  if (nowMs < g.pausedUntil) return { ok: false, waitMs: g.pausedUntil - nowMs }
  climb(g, nowMs)
  const { limit, windowMs } = windowOf(g)
  const ahead = g.options.paceAheadMs
  if (ahead !== undefined && nowMs < g.paceAt - ahead) return { ok: false, waitMs: Math.max(1, g.paceAt - ahead - nowMs) }
  // what is left are the requests of the window ending now
  prune(g, nowMs, windowMs)
  const inWindow = g.count
  if (inWindow >= limit) {
    // wait until enough of them leave the window that one more fits
    const leaving = at(g, g.count - limit)
    return { ok: false, waitMs: Math.max(1, leaving + windowMs - nowMs) }
  }
  g.ring[(g.head + g.count) % g.ring.length] = nowMs
  g.count++
  if (ahead !== undefined) g.paceAt = Math.max(g.paceAt, nowMs) + windowMs / limit
  return admitted
}

/**
 * A 429: lower the allowed rate (once per window: the requests in flight answer together) and pause
 * until `retryAfterMs` from now (bounded; `defaultPauseMs` when the partner said nothing).
 */
export const onThrottled = (g: RateGovernor, nowMs: number, retryAfterMs?: number): void => {
  const pause = Math.min(g.options.maxPauseMs, Math.max(0, retryAfterMs ?? g.options.defaultPauseMs))
  g.pausedUntil = Math.max(g.pausedUntil, nowMs + pause)
  if (nowMs - g.lastDecreaseAt >= g.options.windowMs) {
    g.lastDecreaseAt = nowMs
    g.allowedRate = Math.max(Math.min(g.options.floorPerSecond, g.configured), g.allowedRate * g.options.decreaseFactor)
  }
  g.climbFrom = g.pausedUntil
}

/** A request the partner accepted (any answer but 429): the rate climbs back as seconds pass without 429. */
export const onAccepted = (g: RateGovernor, nowMs: number): void => climb(g, nowMs)

/** The rate the governor currently allows, requests per second (the configured one unless 429s lowered it). */
export const allowed = (g: RateGovernor): number => g.allowedRate

/** When sending may resume after a 429 (ms since epoch), or -Infinity when not paused. */
export const pausedUntil = (g: RateGovernor): number => g.pausedUntil

/** Requests started in the last second, `(nowMs - 1000, nowMs]`. */
export const currentRate = (g: RateGovernor, nowMs: number): number => {
  let n = 0
  for (let i = g.count - 1; i >= 0 && at(g, i) > nowMs - 1000; i--) n++
  return n
}

/**
 * The share of `limit` of owner `index` (0 ≤ index < owners) when a destination is split over
 * `owners` processes: shares sum to `limit` exactly, so the limit holds across them all. An integer
 * limit of at least `owners` is split in integers (the first `limit mod owners` get one more); below
 * that, or for a fractional limit, each gets `limit / owners`.
 */
export const shareOf = (limit: number, owners: number, index: number): number => {
  if (!Number.isInteger(owners) || owners < 1 || !Number.isInteger(index) || index < 0 || index >= owners) {
    throw new RangeError(`no share ${index} of ${owners} owners`)
  }
  if (!Number.isInteger(limit) || limit < owners) return limit / owners
  const base = Math.floor(limit / owners)
  return base + (index < limit - base * owners ? 1 : 0)
}
