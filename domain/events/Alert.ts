/**
 * A trend alert (issue 8 item 7), as published on ALERTS (`alerts.<app>`) and listed by
 * `GET /v1/alerts`: an app's minute series left its recent trend (domain/events/trend.ts) for two
 * minutes in a row. Public: consumers of `alerts.*` code against these fields.
 */
import { Schema } from "effect"
import { Uint64String } from "../ids.ts"
import { IsoDateTime } from "../isoDateTime.ts"
import { Direction } from "./trend.ts"

/** The series watched: events received per minute, and the p50 of intake latency per minute (milliseconds). */
export const TrendMeasure = Schema.Literals(["events", "intakeLatencyP50"])
export type TrendMeasure = typeof TrendMeasure.Type

export const Alert = Schema.Struct({
  /** increasing: pass the last one seen as `after` to list newer alerts */
  id: Schema.Int,
  app: Uint64String,
  measure: TrendMeasure,
  /** the start of the (UTC, server time) minute that completed the run out of trend */
  at: IsoDateTime,
  /** the trend's value for that minute */
  expected: Schema.Finite,
  actual: Schema.Finite,
  direction: Direction
}).annotate({ identifier: "Alert" })
export type Alert = typeof Alert.Type
