/**
 * Profiles the platform's deliverer alone (not part of `npm run bench`): the partner simulator and
 * one platform process started with `--cpu-prof`, then either part (b)'s destination (limit 15,000/s,
 * 64 in flight) or part (a)'s 20 destinations at 200/s, for BENCH_DELIVERY_SECONDS (default 12). It
 * prints the achieved rate, the most in any one-second window and the CPU µs per request of the
 * platform, of nats-server and of the simulator (all three share the machine's cores), and the
 * platform's CPU when idle (measured for 3 s before delivering, and taken off in `platformBeyondIdle`); the profile
 * is written to BENCH_PROFILE_DIR when the platform stops (SIGTERM).
 *
 *   node bench/deliveryProfile.ts b|a
 */
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect } from "effect"
import { destinationStats, spawnPartnerSimulator } from "../test/fixtures/partnerSimulator.ts"
import { stopProcess } from "../test/fixtures/platformProcess.ts"
import { admin, benchPartner, chunksFor, createDestinations, startDeliveryPlatform } from "./deliveryPlatform.ts"
import { cpuSeconds } from "./cpuTime.ts"
import { round2 } from "./stats.ts"

const part = process.argv[2] === "a" ? "a" : "b"
const seconds = Number(process.env.BENCH_DELIVERY_SECONDS ?? 12)
const profileDir = process.env.BENCH_PROFILE_DIR


/** part (b)'s limit; lower it to compare CPU per request of two versions at a rate both reach */
const fastRate = Number(process.env.BENCH_DELIVERY_RATE ?? 15_000)
const destinations = part === "b"
  ? [{ id: "fast", ratePerSecond: fastRate, maxInFlight: 64 }]
  : Array.from({ length: 20 }, (_, i) => ({ id: `h${String(i + 1).padStart(2, "0")}`, ratePerSecond: 200, maxInFlight: 16 }))

const run = Effect.gen(function*() {
  const { url, pid: simulatorPid } = yield* spawnPartnerSimulator(Object.fromEntries(destinations.map((d) => [d.id, { limit: d.ratePerSecond }])))
  const env: Record<string, string> = profileDir === undefined ? {} : { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir}` }
  const { platform, nats, publish } = yield* startDeliveryPlatform(env)
  yield* admin(platform.base, "PUT", `/v1/entities/partner/${benchPartner}`, { name: "Delivery bench partner" })
  for (const d of destinations) {
    const count = Math.min(400_000, d.ratePerSecond * (seconds + 10))
    yield* Effect.forEach(chunksFor(d.id, count, 500), publish, { concurrency: 16, discard: true })
  }
  const pids = [platform.pid, nats.pid, simulatorPid]
  // what the platform spends with nothing to deliver (leases, ticks, projections): part of every figure below
  const idleFrom = cpuSeconds(platform.pid) * 1e6
  yield* Effect.sleep(3_000)
  const idleMicrosPerSecond = (cpuSeconds(platform.pid) * 1e6 - idleFrom) / 3
  const before = pids.map((pid) => cpuSeconds(pid) * 1e6)
  const startedAt = Date.now()
  yield* createDestinations(platform.base, url, destinations)
  yield* Effect.sleep(seconds * 1000)
  const cpu = pids.map((pid, i) => cpuSeconds(pid) * 1e6 - before[i]!)
  const elapsed = (Date.now() - startedAt) / 1000
  const figures = yield* Effect.forEach(destinations, (d) => destinationStats(url, d.id))
  const steady = (counts: ReadonlyArray<readonly [number, number]>) => {
    const first = counts[0]?.[0]
    if (first === undefined) return 0
    const m = new Map(counts)
    const span = Math.max(1, seconds - 3)
    let sum = 0
    for (let s = first + 2; s < first + 2 + span; s++) sum += m.get(s) ?? 0
    return sum / span
  }
  const requests = figures.reduce((sum, f) => sum + f.accepted + f.throttled + f.failed, 0)
  const rates = figures.map((f) => steady(f.acceptedPerSecond))
  // how many receipts shared a RECEIPTS message: fewer messages, less for nats-server and both sides' sockets
  const receiptMessages = yield* Effect.promise(async () => {
    const nc = await connect({ servers: nats.url, user: nats.platform.user, pass: nats.platform.password })
    const info = await (await jetstreamManager(nc)).streams.info("RECEIPTS")
    await nc.close()
    return info.state.messages
  })
  yield* stopProcess(platform, "SIGTERM")
  return {
    part,
    elapsed: round2(elapsed),
    worstRatio: round2(Math.min(...rates.map((r, i) => r / destinations[i]!.ratePerSecond))),
    meanRate: round2(rates.reduce((a, b) => a + b, 0) / rates.length),
    maxInAnyWindow: Math.max(...figures.map((f) => f.maxInAnyWindow)),
    throttled: figures.reduce((s, f) => s + f.throttled, 0),
    requests,
    receiptsPerMessage: round2(figures.reduce((s, f) => s + f.accepted, 0) / Math.max(1, receiptMessages)),
    cpuMicrosPerRequest: { platform: round2(cpu[0]! / requests), natsServer: round2(cpu[1]! / requests), simulator: round2(cpu[2]! / requests) },
    /** the platform's CPU per request less what it spends idle */
    platformBeyondIdle: round2((cpu[0]! - idleMicrosPerSecond * elapsed) / requests),
    platformIdleCpuPercent: round2(idleMicrosPerSecond / 10_000)
  }
}).pipe(Effect.scoped)

console.log(JSON.stringify(await Effect.runPromise(run)))
process.exit(0)
