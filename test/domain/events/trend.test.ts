import { assert, describe, it } from "@effect/vitest"
import { eventsRule, initialTrend, latencyRule, stepTrend, type TrendAlert, type TrendRule } from "../../../domain/events/trend.ts"

/** Feeds a series minute by minute; the alerts raised, with the minute index that raised each. */
const run = (rule: TrendRule, series: ReadonlyArray<number>) => {
  let state = initialTrend
  const alerts: Array<TrendAlert & { readonly minute: number }> = []
  series.forEach((value, minute) => {
    const step = stepTrend(rule, state, value)
    state = step.state
    if (step.alert !== undefined) alerts.push({ ...step.alert, minute })
  })
  return alerts
}

/** A deterministic noise in [-amplitude, amplitude] (no Math.random: the test is the same every run). */
const noise = (i: number, amplitude: number) => amplitude * Math.sin(i * 12.9898) * Math.cos(i * 78.233)

const steady = (minutes: number, level: number, amplitude: number) => Array.from({ length: minutes }, (_, i) => level + noise(i, amplitude))

describe("trend alerts", () => {
  it("raise an alert down when an app's events fall by more than half for two minutes", () => {
    const series = [...steady(30, 1_000, 100), 400, 380]
    const alerts = run(eventsRule, series)
    assert.strictEqual(alerts.length, 1)
    assert.strictEqual(alerts[0]!.direction, "down")
    assert.strictEqual(alerts[0]!.minute, 31)
    assert.strictEqual(alerts[0]!.actual, 380)
    assert.isTrue(alerts[0]!.expected > 900 && alerts[0]!.expected < 1_100)
  })

  it("raise an alert up when p50 intake latency goes from 200 ms to 800 ms", () => {
    const alerts = run(latencyRule, [...steady(30, 200, 20), 800, 800, 800])
    assert.deepStrictEqual(alerts.map((a) => [a.direction, a.minute, a.actual]), [["up", 31, 800]])
  })

  it("stay quiet on a steady series with noise, over hours", () => {
    assert.deepStrictEqual(run(eventsRule, steady(600, 1_000, 150)), [])
    assert.deepStrictEqual(run(latencyRule, steady(600, 200, 40)), [])
  })

  it("ignore a single odd minute", () => {
    assert.deepStrictEqual(run(eventsRule, [...steady(30, 1_000, 100), 300, 1_000, 1_010]), [])
  })

  it("do not alert on a fall of less than half", () => {
    assert.deepStrictEqual(run(eventsRule, [...steady(30, 1_000, 20), 600, 600, 600]), [])
  })

  it("learn during the warm-up: no alert before it ends", () => {
    assert.deepStrictEqual(run(eventsRule, [1_000, 1_000, 1_000, 100, 100, 100]), [])
  })

  it("alert once per run out of trend, again after the series came back", () => {
    const series = [...steady(30, 1_000, 50), 300, 300, 300, 300, 1_000, 1_000, 1_000, 300, 300]
    assert.deepStrictEqual(run(eventsRule, series).map((a) => [a.direction, a.minute]), [["down", 31], ["down", 38]])
  })

  it("take a lasting new level as the new normal", () => {
    const series = [...steady(30, 1_000, 50), ...steady(60, 300, 15)]
    const alerts = run(eventsRule, series)
    assert.deepStrictEqual(alerts.map((a) => a.direction), ["down"])
  })

  it("ignore the ups and downs of a quiet app (absolute floor)", () => {
    assert.deepStrictEqual(run(eventsRule, [...steady(30, 4, 1), 0, 0, 0]), [])
  })
})
