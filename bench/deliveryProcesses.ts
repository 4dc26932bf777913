/**
 * Delivery to partners (issue 9, item 8), part (c): records delivered per second with 1 and with 2
 * platform processes, and the time a second process takes to take a destination over after a SIGKILL.
 *
 * One nats-server and one DATA_DIR; `api/main.ts` started once (phase 1), then a second time (phases 2
 * and 3). Each phase makes `destinations` fresh destinations (limit 2,000/s each, so that the limit does
 * not bind; one lane each), puts `records` records on DELIVER for them (chunks published straight on
 * the lanes' subjects, as bench/deliveryPlatform.ts does) and waits until the partner simulator (its
 * own process) has accepted every one. The lanes are spread over the processes by the platform's own
 * rendezvous leases (`job.deliver.<destination>.<lane>`); who holds which is read from the leases bucket.
 *
 * - records/s: records ÷ (last accepted − first accepted) over the phase's destinations.
 * - takeover (phase 3): once the first destination has had a quarter of its records, the process holding
 *   its lease is SIGKILLed; the time from the kill until the simulator accepts that destination's next
 *   request (requests already in flight at the kill may still land within `settleMs`; the next one after
 *   that is the new holder's). Meanwhile the survivor's own lanes keep delivering (counted). Then every
 *   record must arrive (no key missing), DELIVER must be drained, and a lane's keys accepted twice must be
 *   at most its in-flight limit, on the killed process's lanes only. Expect the lease TTL (10 s) and a tick.
 *
 * On 2 cores a second process cannot add CPU: what this shows is that the work spreads and nothing
 * stalls. BENCH_DELIVERY_PROCESS_RECORDS (default 12,000 a phase), BENCH_DELIVERY_PROCESS_DESTINATIONS
 * (default 8). `node bench/deliveryProcesses.ts` alone, or within bench/delivery.ts.
 */
import { cpus, loadavg } from "node:os"
import { jetstream } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { connect } from "@nats-io/transport-node"
import { Duration, Effect, Schedule } from "effect"
import { chunkId, idempotencyKey } from "../domain/delivery/Chunk.ts"
import { deliverSubject, StreamNames } from "../domain/subjects.ts"
import { deliveryLeaseKey } from "../actors/delivery/runDeliveries.ts"
import { coordinationTtl } from "../infra/nats/buckets.ts"
import { startTestNatsServer } from "../test/fixtures/nats.ts"
import { destinationStats, receivedRequests, spawnPartnerSimulator, type SimulatorStats } from "../test/fixtures/partnerSimulator.ts"
import { call, platformEnv, type PlatformProcess, startPlatformProcess, stopProcess, waitUntilReady } from "../test/fixtures/platformProcess.ts"
import { tempDir } from "../test/fixtures/tempDir.ts"
import { admin, benchPartner, chunksFor, createDestinations } from "./deliveryPlatform.ts"
import { BENCH_ADMIN_KEY } from "./platform.ts"
import { round2 } from "./stats.ts"
import type { SummaryRow } from "./summary.ts"

const records = Number(process.env.BENCH_DELIVERY_PROCESS_RECORDS ?? 12_000)
const destinationCount = Number(process.env.BENCH_DELIVERY_PROCESS_DESTINATIONS ?? 8)
/** each destination's limit: high enough not to bind */
const limit = 2_000
const maxInFlight = 16
const chunkSize = 250
/** after the kill, requests already on the wire may still be accepted: the next request counted is one after this */
const settleMs = 300
const leasesBucket = "tributary-leases"

const names = (phase: string) => Array.from({ length: destinationCount }, (_, i) => `${phase}-d${i + 1}`)
const perDestination = Math.ceil(records / destinationCount)

/** the pid in a member / holder id (`<host>-<pid>-<hex6>`) */
const pidOf = (holder: string): number | undefined => {
  const match = /-(\d+)-[0-9a-f]{6}$/.exec(holder.trim().replace(/^"|"$/g, ""))
  return match === null ? undefined : Number(match[1])
}

const poll = <A, E, R>(what: string, read: Effect.Effect<A, E, R>, done: (a: A) => boolean, times = 1_200, every: Duration.Input = "100 millis") =>
  read.pipe(
    Effect.filterOrFail(done, () => "not yet" as const),
    Effect.retry(Schedule.spaced(every).pipe(Schedule.upTo({ times }))),
    Effect.catch(() => Effect.die(new Error(`${what}: not reached`)))
  )

/** every record of `ids` accepted at least once */
const allDelivered = (simulator: string, ids: ReadonlyArray<string>) =>
  poll(
    "every record delivered",
    Effect.forEach(ids, (id) => destinationStats(simulator, id), { concurrency: 8 }),
    (all) => all.every((s) => s.accepted - s.duplicateKeys >= perDestination),
    1_800
  )

const rateOf = (stats: ReadonlyArray<SimulatorStats>) => {
  const first = Math.min(...stats.map((s) => s.firstAcceptedAt ?? Infinity))
  const last = Math.max(...stats.map((s) => s.lastAcceptedAt ?? -Infinity))
  const delivered = stats.reduce((sum, s) => sum + s.accepted - s.duplicateKeys, 0)
  return { delivered, seconds: round2((last - first) / 1000), recordsPerSecond: round2(delivered / Math.max(0.001, (last - first) / 1000)) }
}

const run = Effect.gen(function*() {
  const phases = ["one", "two", "kill"] as const
  const simulator = yield* spawnPartnerSimulator(Object.fromEntries(phases.flatMap((p) => names(p).map((n) => [n, { limit }]))))
  const nats = yield* startTestNatsServer
  const dir = yield* tempDir("bench-delivery-processes")
  const env = platformEnv(nats, dir, BENCH_ADMIN_KEY, { LOG_LEVEL: "Warn" })
  const nc = yield* Effect.acquireRelease(
    Effect.promise(() => connect({ servers: nats.url, name: "bench-delivery-processes", user: nats.platform.user, pass: nats.platform.password })),
    (nc) => Effect.promise(() => nc.close())
  )
  const js = jetstream(nc)
  const kvm = new Kvm(nc)

  const first = yield* startPlatformProcess(env, dir)
  yield* waitUntilReady(first)
  const processes: Array<PlatformProcess> = [first]
  yield* admin(first.base, "PUT", `/v1/entities/partner/${benchPartner}`, { name: "Delivery bench partner" })

  /** who holds each destination's lane-0 lease (pid), from the leases bucket */
  const holders = (ids: ReadonlyArray<string>) =>
    Effect.promise(async () => {
      const kv = await kvm.open(leasesBucket)
      return Promise.all(ids.map(async (id) => {
        const entry = await kv.get(deliveryLeaseKey(id, 0))
        return entry === null || entry.operation !== "PUT" ? undefined : pidOf(entry.string())
      }))
    })

  /** publishes the phase's records and creates its destinations (the lanes start within a tick) */
  const start = (ids: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      yield* Effect.forEach(ids, (id) =>
        Effect.forEach(chunksFor(id, perDestination, chunkSize), (chunk) =>
          Effect.promise(() => js.publish(deliverSubject(chunk.destination, chunk.lane), JSON.stringify(chunk), { msgID: chunkId(chunk) })), { concurrency: 16, discard: true }), { discard: true })
      yield* createDestinations(processes[0]!.base, simulator.url, ids.map((id) => ({ id, ratePerSecond: limit, maxInFlight })))
    })

  const stats = (ids: ReadonlyArray<string>) => Effect.forEach(ids, (id) => destinationStats(simulator.url, id), { concurrency: 8 })

  /** a phase without a kill: the rate, and which process delivered how many destinations */
  const measure = (phase: string) =>
    Effect.gen(function*() {
      const ids = names(phase)
      yield* start(ids)
      // the leases are read while the lanes deliver (a lane done is still held; read early anyway)
      yield* poll("lanes leased", holders(ids), (h) => h.every((pid) => pid !== undefined), 600)
      const pids = yield* holders(ids)
      yield* allDelivered(simulator.url, ids)
      const all = yield* stats(ids)
      return {
        processes: processes.length,
        destinations: ids.length,
        records: perDestination * ids.length,
        ...rateOf(all),
        duplicates: all.reduce((sum, s) => sum + s.duplicateKeys, 0),
        lanesPerProcess: processes.map((p) => pids.filter((pid) => pid === p.pid).length)
      }
    })

  // (1) one process
  const one = yield* measure("one")

  // (2) two processes: the second joins the cluster, then new destinations spread over both
  const second = yield* startPlatformProcess(env, dir)
  yield* waitUntilReady(second)
  processes.push(second)
  yield* poll(
    "two members",
    Effect.map(call(first.base, "GET", "/v1/admin/cluster", { key: BENCH_ADMIN_KEY }), (a) => (a.body as { processes?: Array<unknown> } | undefined)?.processes?.length ?? 0),
    (n) => n === 2,
    600
  )
  const two = yield* measure("two")

  // (3) two processes, the holder of the first destination SIGKILLed mid-delivery
  const ids = names("kill")
  const victim = ids[0]!
  yield* start(ids)
  yield* poll("victim a quarter through", destinationStats(simulator.url, victim), (s) => s.accepted >= perDestination / 4, 1_200, "20 millis")
  const pidsBefore = yield* holders(ids)
  const killedPid = pidsBefore[0]
  const killed = processes.find((p) => p.pid === killedPid)
  if (killed === undefined) return yield* Effect.die(new Error(`no process holds ${victim}'s lease (holders ${JSON.stringify(pidsBefore)})`))
  const survivor = processes.find((p) => p !== killed)!
  const killedLanes = ids.filter((_, i) => pidsBefore[i] === killed.pid)
  const atKill = yield* stats(ids)
  const killedAt = Date.now()
  yield* stopProcess(killed, "SIGKILL")
  yield* Effect.sleep(settleMs)
  const settled = yield* destinationStats(simulator.url, victim)
  yield* poll("victim taken over", destinationStats(simulator.url, victim), (s) => s.accepted > settled.accepted, 3_000, "20 millis")
  // the first request the simulator accepted for the victim after the settling: the new holder's first
  const victimReceived = yield* receivedRequests(simulator.url, victim)
  const resumedAt = Math.min(...victimReceived.map((r) => r.at).filter((at) => at > killedAt + settleMs))
  const lastBeforeKill = Math.max(...victimReceived.map((r) => r.at).filter((at) => at <= killedAt + settleMs))
  const takeoverMs = resumedAt - killedAt
  // the other lanes of the survivor kept going meanwhile: what they accepted between the kill and the takeover
  const survivorLanes = ids.filter((_, i) => pidsBefore[i] === survivor.pid)
  const atTakeover = yield* stats(ids)
  const duringTakeover = survivorLanes.reduce((sum, id) => {
    const i = ids.indexOf(id)
    return sum + atTakeover[i]!.accepted - atKill[i]!.accepted
  }, 0)
  yield* allDelivered(simulator.url, ids)
  const pidsAfter = yield* holders(ids)
  const done = yield* stats(ids)
  // every key of every record, at least once
  const missing = yield* Effect.forEach(ids, (id) =>
    Effect.map(receivedRequests(simulator.url, id), (received) => {
      const keys = new Set(received.map((r) => r.key))
      return chunksFor(id, perDestination, chunkSize).flatMap((chunk) => chunk.records.map((_, n) => idempotencyKey(chunk, n))).filter((key) => !keys.has(key)).length
    }), { concurrency: 4 })
  const duplicates = done.reduce((sum, s) => sum + s.duplicateKeys, 0)
  const inFlightAtKill = killedLanes.length * maxInFlight
  // repeats per lane: only the killed process's lanes may have any, each at most its in-flight limit
  const duplicatesPerLane = Object.fromEntries(ids.map((id, i) => [id, done[i]!.duplicateKeys]))
  const repeatsWithinInFlight = ids.every((id, i) => done[i]!.duplicateKeys <= (killedLanes.includes(id) ? maxInFlight : 0))
  // DELIVER drained: nothing left behind by the dead process
  const deliverLeft = yield* Effect.promise(async () => (await (await js.jetstreamManager()).streams.info(StreamNames.deliver)).state.messages)
  const kill = {
    processes: 2,
    destinations: ids.length,
    records: perDestination * ids.length,
    ...rateOf(done),
    victim,
    killedPid: killed.pid,
    victimAcceptedAtKill: atKill[0]!.accepted,
    killedProcessLanes: killedLanes.length,
    takeoverMs,
    /** the last request of the victim accepted from the killed process (in flight at the kill), after the kill */
    lastFromKilledMs: lastBeforeKill - killedAt,
    leaseTtlMs: Duration.toMillis(coordinationTtl),
    survivorLanes: survivorLanes.length,
    survivorAcceptedDuringTakeover: duringTakeover,
    lanesAfterOnSurvivor: pidsAfter.filter((pid) => pid === survivor.pid).length,
    missing: missing.reduce((a, b) => a + b, 0),
    duplicates,
    duplicatesPerLane,
    inFlightAtKill,
    repeatsWithinInFlight,
    deliverLeft
  }
  return { one, two, kill }
}).pipe(Effect.scoped)

export const benchDeliveryProcesses = async () => {
  const { one, two, kill } = await Effect.runPromise(run)
  const machine = { cores: cpus().length, loadAverage: loadavg().map(round2) }
  const result = {
    setup: { destinations: destinationCount, recordsPerPhase: perDestination * destinationCount, limitPerDestination: limit, maxInFlight, lanes: 1, chunkSize, settleMs },
    machine,
    one,
    two,
    kill
  }
  const lost = kill.missing
  const rows: Array<SummaryRow> = [
    {
      benchmark: `delivery (c) records delivered/s, ${destinationCount} destinations, 2 processes (${machine.cores} cores, load ${machine.loadAverage[0]})`,
      figure: `${two.recordsPerSecond}/s, lanes per process ${two.lanesPerProcess.join("/")}`,
      ceiling: `1 process: ${one.recordsPerSecond}/s`,
      ratio: round2(two.recordsPerSecond / one.recordsPerSecond),
      target: "reported (spread over both, nothing lost)",
      pass: two.lanesPerProcess.every((n) => n > 0) && two.delivered >= two.records
    },
    {
      benchmark: `delivery (c) takeover of a destination after a SIGKILL of its process (${machine.cores} cores)`,
      figure: `${round2(kill.takeoverMs / 1000)} s (lease TTL ${kill.leaseTtlMs / 1000} s), survivor's other lanes ${kill.survivorAcceptedDuringTakeover} records meanwhile; ${lost} lost, ${kill.duplicates} repeated (≤ ${kill.inFlightAtKill} in flight)`,
      ceiling: "—",
      ratio: Number.NaN,
      target: "reported; nothing lost, repeats ≤ in flight",
      pass: lost === 0 && kill.repeatsWithinInFlight && kill.deliverLeft === 0
    }
  ]
  return { result, rows }
}

if (import.meta.main) {
  const { result, rows } = await benchDeliveryProcesses()
  console.log(JSON.stringify(result, null, 2))
  console.log(rows)
  process.exit(0)
}
