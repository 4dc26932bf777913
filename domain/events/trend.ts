/**
 * Trend alerts (issue 8 item 7): a minute series (an app's events per minute, its p50 intake latency)
 * compared with its own recent trend, not with a fixed threshold. Pure: the caller feeds one value per
 * complete minute, in order.
 *
 * The rule: an exponentially weighted moving average (EWMA) of the series is its expected value, and an
 * EWMA of the absolute deviation from it is its usual noise. A minute is out of trend when it differs
 * from the expected value by more than the larger of `k` × the usual noise, `relativeFloor` × the
 * expected value (a noiseless series must still move by a real fraction) and `absoluteFloor` (a few
 * events of a quiet app are not a trend). Two consecutive minutes out of trend in the same direction
 * raise one alert; a single odd minute does not. Minutes out of trend are not folded into the
 * average (a collapse must not become the new normal within minutes); after `readaptAfter` of them
 * in a row the series starts over (a lasting new level is the new normal). The first `warmUp`
 * minutes only learn.
 */
import { Schema } from "effect"

export const Direction = Schema.Literals(["up", "down"])
export type Direction = typeof Direction.Type

export interface TrendRule {
  /** weight of the newest minute in the averages (0..1) */
  readonly alpha: number
  /** how many times the usual deviation a minute must move */
  readonly k: number
  /** and at least this fraction of the expected value */
  readonly relativeFloor: number
  /** and at least this much in the series' unit */
  readonly absoluteFloor: number
  /** minutes learnt before any alert */
  readonly warmUp: number
  /** minutes out of trend in a row, same direction, that raise an alert */
  readonly consecutive: number
  /** minutes out of trend in a row after which the series starts over from the new level */
  readonly readaptAfter: number
}

/** Events per minute: a drop by more than half (or a doubling) after 10 minutes of history. */
export const eventsRule: TrendRule = { alpha: 0.2, k: 4, relativeFloor: 0.5, absoluteFloor: 5, warmUp: 10, consecutive: 2, readaptAfter: 15 }
/** p50 intake latency in milliseconds: 200 ms → 800 ms alerts, a jitter of tens of milliseconds does not. */
export const latencyRule: TrendRule = { alpha: 0.2, k: 4, relativeFloor: 0.5, absoluteFloor: 50, warmUp: 10, consecutive: 2, readaptAfter: 15 }

export const TrendState = Schema.Struct({
  /** minutes learnt since the (re)start */
  learnt: Schema.Int,
  expected: Schema.Finite,
  deviation: Schema.Finite,
  /** the current run of minutes out of trend */
  outside: Schema.Int,
  outsideDirection: Schema.optionalKey(Direction),
  /** the direction already alerted for the current run (no second alert until back in trend) */
  alerted: Schema.optionalKey(Direction)
}).annotate({ identifier: "TrendState" })
export type TrendState = typeof TrendState.Type

export const initialTrend: TrendState = { learnt: 0, expected: 0, deviation: 0, outside: 0 }

export interface TrendAlert {
  readonly direction: Direction
  readonly expected: number
  readonly actual: number
}

const learn = (rule: TrendRule, state: TrendState, value: number): TrendState => {
  if (state.learnt === 0) return { learnt: 1, expected: value, deviation: 0, outside: 0 }
  const deviation = (1 - rule.alpha) * state.deviation + rule.alpha * Math.abs(value - state.expected)
  const expected = (1 - rule.alpha) * state.expected + rule.alpha * value
  return { learnt: state.learnt + 1, expected, deviation, outside: 0 }
}

/** The band around the expected value a minute may move within. */
export const band = (rule: TrendRule, state: TrendState): number =>
  Math.max(rule.k * state.deviation, rule.relativeFloor * Math.abs(state.expected), rule.absoluteFloor)

/** One complete minute's value: the next state, and an alert when this minute completes a run out of trend. */
export const stepTrend = (rule: TrendRule, state: TrendState, value: number): { readonly state: TrendState; readonly alert?: TrendAlert } => {
  if (state.learnt < rule.warmUp) return { state: learn(rule, state, value) }
  const difference = value - state.expected
  if (Math.abs(difference) <= band(rule, state)) return { state: learn(rule, state, value) }
  const direction: Direction = difference > 0 ? "up" : "down"
  const outside = state.outsideDirection === direction ? state.outside + 1 : 1
  if (outside >= rule.readaptAfter) return { state: learn(rule, initialTrend, value) }
  const raise = outside >= rule.consecutive && state.alerted !== direction
  const next: TrendState = { ...state, outside, outsideDirection: direction, ...(raise ? { alerted: direction } : {}) }
  return raise ? { state: next, alert: { direction, expected: state.expected, actual: value } } : { state: next }
}
