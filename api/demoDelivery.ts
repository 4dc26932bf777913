/**
 * The delivery part of `make demo` (issue 9): the segments the demo ingested go to two simulated
 * partners with different limits — "acme-dsp" (acme-data's segments, 50 requests/s, JSON Lines of 50
 * records, 10% of its answers 429) and "bank-dsp" (crm-bank's segments, 200 requests/s, JSON arrays of
 * 10) — through the partner simulator (test/fixtures/partnerSimulator.ts, run in this process: a real
 * HTTP server enforcing each limit over sliding one-second windows, as partners count). A destination
 * created gets every current member of its segments (a refresh). bank-dsp answers 500 to everything
 * for its first seconds, with one attempt a request: its circuit opens and the failed requests become
 * dead letters, which the demo replays once it is healthy. It waits until every record was delivered
 * and prints each destination's status beside what the partner saw.
 */
import { Effect, Schema } from "effect"
import { DestinationStatus } from "../domain/delivery/DestinationStatus.ts"
import { configureDestination, destinationStats, type SimulatorStats, startPartnerSimulator } from "../test/fixtures/partnerSimulator.ts"

export interface DeliveryDemoOptions {
  readonly baseUrl: string
  readonly adminKey: string
}

/** How long bank-dsp answers 500 to everything. */
const failingMillis = 2_000
/** How long the demo waits for every record at most. */
const deadlineMillis = 30_000

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const PartnerState = Schema.Struct({ state: Schema.Struct({ segmentMap: Schema.Record(Schema.String, Schema.String) }) })
const SegmentSize = Schema.Struct({ members: Schema.Number })
const DeadLetterPage = Schema.Struct({ items: Schema.Array(Schema.Struct({ id: Schema.String, records: Schema.Array(Schema.Unknown) })) })
const Replayed = Schema.Struct({ replayed: Schema.Number })

/** Runs the delivery workload and returns its summary (printed by api/demo.ts). */
export const deliveryWorkload = async (options: DeliveryDemoOptions): Promise<string> => {
  const call = async <A>(method: string, path: string, schema: Schema.Decoder<A>, body?: unknown): Promise<A> => {
    const response = await fetch(`${options.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${options.adminKey}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    const text = await response.text()
    if (!response.ok) throw new Error(`demo: ${method} ${path} → ${response.status} ${text}`)
    return Schema.decodeUnknownSync(schema)(text.length === 0 ? {} : JSON.parse(text))
  }
  const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)
  const simulator = await startPartnerSimulator({
    destinations: { "acme-dsp": { limit: 50, fail429Ratio: 0.1 }, "bank-dsp": { limit: 200, fail5xxRatio: 1 } }
  })
  try {
    const destinations = [
      { id: "acme-dsp", partnerId: "acme-data", limit: 50, fields: { format: "ndjson", batchSize: 50 } },
      // one attempt: a request that fails is a dead letter at once (to show them; the default is 8)
      { id: "bank-dsp", partnerId: "crm-bank", limit: 200, fields: { format: "json-array", batchSize: 10, maxAttempts: 1 } }
    ]
    // a destination takes its partner's segments; it is sent one record per (member, segment)
    const expected = new Map<string, number>()
    const segmentsOf = new Map<string, ReadonlyArray<string>>()
    for (const d of destinations) {
      const segmentIds = Object.values((await call("GET", `/v1/entities/partner/${d.partnerId}`, PartnerState)).state.segmentMap).sort()
      segmentsOf.set(d.id, segmentIds)
      let records = 0
      for (const id of segmentIds) records += (await call("GET", `/v1/segments/${id}`, SegmentSize)).members
      expected.set(d.id, records)
    }
    const started = performance.now()
    for (const d of destinations) {
      await call("PUT", `/v1/entities/destination/${d.id}`, Schema.Unknown, {
        partnerId: d.partnerId, url: `${simulator.url}/d/${d.id}`, ratePerSecond: d.limit, segmentIds: segmentsOf.get(d.id), ...d.fields
      })
    }
    const healing = sleep(failingMillis).then(() => run(configureDestination(simulator.url, "bank-dsp", { fail5xxRatio: 0 })))

    const stats = new Map<string, SimulatorStats>()
    const statuses = new Map<string, DestinationStatus>()
    const deadRecords = new Map<string, number>()
    const busiest = new Map<string, DestinationStatus>()
    const circuits = new Map<string, Set<string>>()
    const deadline = Date.now() + deadlineMillis
    /** Polls until each destination's records are delivered or dead letters, and nothing waits on DELIVER. */
    const settle = async () => {
      for (;;) {
        for (const d of destinations) {
          stats.set(d.id, await run(destinationStats(simulator.url, d.id)))
          const status = await call("GET", `/v1/destinations/${d.id}/status`, DestinationStatus)
          statuses.set(d.id, status)
          // a deliverer's counters are its own since it started: keep the fullest picture seen
          if (status.sent >= (busiest.get(d.id)?.sent ?? 0)) busiest.set(d.id, status)
          circuits.set(d.id, new Set([...circuits.get(d.id) ?? [], status.circuit]))
          const letters = statuses.get(d.id)!.deadLetters === 0 ? { items: [] } : await call("GET", `/v1/destinations/${d.id}/dead-letters?limit=1000`, DeadLetterPage)
          deadRecords.set(d.id, letters.items.reduce((n, letter) => n + letter.records.length, 0))
        }
        const settled = destinations.every((d) =>
          statuses.get(d.id)!.backlog === 0 && stats.get(d.id)!.records + deadRecords.get(d.id)! >= expected.get(d.id)!)
        if (settled || Date.now() > deadline) return
        await sleep(500)
      }
    }
    await healing
    await settle()
    const before = new Map(statuses)
    // healthy again: bank-dsp's dead letters are sent again, as new requests (new Idempotency-Keys)
    const replayed = before.get("bank-dsp")!.deadLetters === 0
      ? 0
      : (await call("POST", "/v1/destinations/bank-dsp/dead-letters/replay", Replayed, {})).replayed
    await settle()
    const seconds = (performance.now() - started) / 1000

    const rows = destinations.map((d) => {
      const s = stats.get(d.id)!
      const status = busiest.get(d.id) ?? statuses.get(d.id)!
      const busiestSecond = Math.max(0, ...s.acceptedPerSecond.map(([, n]) => n))
      return [
        `    ${d.id.padEnd(9)} limit ${String(d.limit).padStart(3)}/s  ${s.records} of ${expected.get(d.id)} records in ${s.accepted} requests (${d.fields.format}, ${d.fields.batchSize} a request);` +
        ` busiest second ${busiestSecond}, at most ${s.maxInAnyWindow} arrived in any sliding second; ${s.throttled} answered 429, ${s.failed} failed; ${s.duplicateKeys} Idempotency-Keys accepted twice`,
        `              GET …/status: sent ${status.sent}, succeeded ${status.succeeded}, retried ${status.retried}, failed ${status.failed}, ` +
        `dead letters ${before.get(d.id)!.deadLetters} → ${statuses.get(d.id)!.deadLetters}, backlog ${statuses.get(d.id)!.backlog}, circuit seen ${[...circuits.get(d.id) ?? []].join("/")}, ` +
        `latency p50/p99 ${status.latencyP50Ms ?? "-"}/${status.latencyP99Ms ?? "-"} ms`
      ].join("\n")
    })
    return `
  delivery
    partners     two simulated partner APIs (${simulator.url}/d/<name>), each enforcing its limit over sliding one-second windows
${rows.join("\n")}
    throttled    acme-dsp answered 429 (Retry-After: 1) to 10% of the requests within its limit: honoured, retried, the rate lowered and climbing back
    failing      bank-dsp answered 500 to everything for its first ${(failingMillis / 1000).toFixed(0)} s, with one attempt a request: its circuit opened,
                 the failed requests became dead letters; ${replayed} replayed once it was healthy (POST …/dead-letters/replay: new Idempotency-Keys)
    delivered    in ${seconds.toFixed(1)} s · GET /v1/destinations/{id}/status · GET /v1/destinations/{id}/dead-letters
`
  } finally {
    await simulator.close()
  }
}
