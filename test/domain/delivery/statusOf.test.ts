import { assert, describe, it } from "@effect/vitest"
import type { DelivererStatus } from "../../../domain/delivery/DestinationStatus.ts"
import { staleAfterMillis, statusOf } from "../../../domain/delivery/statusOf.ts"

const now = 1_800_000_000_000
const entry = (fields: Partial<DelivererStatus> = {}): DelivererStatus => ({
  process: "p1", at: now, ratePerSecond: 100, allowedRate: 100, currentRate: 90, sent: 10, succeeded: 8, retried: 1, failed: 1,
  drainRate: 50, latencyP50Ms: 10, latencyP99Ms: 40, freshnessP50Ms: null, freshnessP99Ms: null, circuit: "closed", ...fields
})
const parts = { ratePerSecond: 100, backlog: { chunks: 2, records: 120 }, deadLetters: 4, nowMillis: now }

describe("statusOf", () => {
  it("adds lanes up, shows the worst circuit and the slowest lane's latency, and the ETA from the drain rate", () => {
    const status = statusOf({ ...parts, deliverers: [entry(), entry({ process: "p2", sent: 5, drainRate: 10, latencyP99Ms: 90, latencyP50Ms: null, circuit: "half-open" })] })
    assert.deepStrictEqual(status, {
      ratePerSecond: 100, currentRate: 180, sent: 15, succeeded: 16, retried: 2, failed: 2, deadLetters: 4, backlog: 120, etaSeconds: 2,
      latencyP50Ms: 10, latencyP99Ms: 90, circuit: "half-open", deadLettersRefused: false
    })
  })

  it("dead letters are refused when a live lane says so; a stale lane's word no longer counts", () => {
    const refusing = entry({ process: "p2", deadLettersRefused: true })
    assert.isTrue(statusOf({ ...parts, deliverers: [entry(), refusing] }).deadLettersRefused)
    assert.isFalse(statusOf({ ...parts, deliverers: [entry(), { ...refusing, at: now - staleAfterMillis - 1 }] }).deadLettersRefused)
    assert.isFalse(statusOf({ ...parts, deliverers: [entry({ deadLettersRefused: false })] }).deadLettersRefused)
  })

  it("a stale entry's counters stay but its rates no longer count: nothing drains, so no ETA", () => {
    const status = statusOf({ ...parts, deliverers: [entry({ at: now - staleAfterMillis - 1 })] })
    assert.deepInclude(status, { sent: 10, currentRate: 0, etaSeconds: null, backlog: 120 })
  })

  it("without a deliverer: zeros, a closed circuit, ETA 0 with nothing waiting and null with records waiting", () => {
    assert.deepInclude(statusOf({ ...parts, backlog: { chunks: 0, records: 0 }, deliverers: [] }), { sent: 0, currentRate: 0, etaSeconds: 0, circuit: "closed", latencyP99Ms: null })
    assert.deepInclude(statusOf({ ...parts, deliverers: [] }), { etaSeconds: null })
  })
})
